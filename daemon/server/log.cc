// The daemon's structured log (log.h).
#include "hvmm/daemon/server/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>

#include "hvmm/vmm/fault/fault_log.h"

namespace hvmm::daemon::log {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

void emit(spdlog::level::level_enum level, std::string_view message, Fields fields) {
  if (!spdlog::should_log(level)) {
    return;
  }
  spdlog::log(level, "{}", render(g_format.load(std::memory_order_relaxed), message, fields));
}

// A text value needs quotes when it is empty or has spaces, quotes or '='.
bool needs_quotes(const std::string& value) {
  return value.empty() || value.find_first_of(" \t\"=\n") != std::string::npos;
}

}  // namespace

std::string render(LogFormat format, std::string_view message, Fields fields) {
  std::string line;
  if (format == LogFormat::kJson) {
    line = "\"msg\":\"" + vmm::json_escape(std::string(message)) + "\"";
    for (const Field& field : fields) {
      line += ",\"" + vmm::json_escape(field.key) + "\":";
      line += field.quoted ? "\"" + vmm::json_escape(field.value) + "\"" : field.value;
    }
    return line;
  }
  line = std::string(message);
  for (const Field& field : fields) {
    line += " " + field.key + "=";
    line += field.quoted && needs_quotes(field.value) ? "\"" + vmm::json_escape(field.value) + "\""
                                                      : field.value;
  }
  return line;
}

Result<void> setup(LogFormat format, const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return make_error(ErrorCode::kInvalidArgument, "log-level: unknown level '{}'", level);
  }
  auto logger = spdlog::stderr_logger_mt("hvmmd");
  if (format == LogFormat::kJson) {
    // The message part is rendered as JSON members by render().
    logger->set_pattern("{\"time\":\"%Y-%m-%dT%H:%M:%S.%FZ\",\"level\":\"%l\",%v}",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  g_format.store(format, std::memory_order_relaxed);
  return Ok();
}

void debug(std::string_view message, Fields fields) {
  emit(spdlog::level::debug, message, fields);
}
void info(std::string_view message, Fields fields) {
  emit(spdlog::level::info, message, fields);
}
void warn(std::string_view message, Fields fields) {
  emit(spdlog::level::warn, message, fields);
}
void error(std::string_view message, Fields fields) {
  emit(spdlog::level::err, message, fields);
}

}  // namespace hvmm::daemon::log
