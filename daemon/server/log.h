// The daemon's log: spdlog to stderr, as text or as JSON lines, with structured fields.
//
// Each event is a message and fields: log::info("vm started", {{"vm", name}, {"pid", pid}}).
// Text:  2026-01-01T00:00:00.123Z info vm started vm=web pid=4242
// JSON:  {"time":"2026-01-01T00:00:00.123456789Z","level":"info","msg":"vm started",
//         "vm":"web","pid":4242}
// Field values are strings (quoted and escaped) or integers. Thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"
#include "hvmm/daemon/server/config.h"

namespace hvmm::daemon::log {

// Field is one key and its value, already rendered.
struct Field {
  Field(std::string_view key_in, std::string_view value_in)
      : key(key_in), value(value_in), quoted(true) {}
  Field(std::string_view key_in, const char* value_in)
      : Field(key_in, std::string_view(value_in)) {}
  Field(std::string_view key_in, const std::string& value_in)
      : Field(key_in, std::string_view(value_in)) {}
  template <typename Int, typename = std::enable_if_t<std::is_integral_v<Int>>>
  Field(std::string_view key_in, Int value_in)
      : key(key_in), value(std::to_string(value_in)), quoted(false) {}
  std::string key;
  std::string value;
  bool quoted;
};
using Fields = std::initializer_list<Field>;

// Configure the process's logger: `level` is one of spdlog's level names.
Result<void> setup(LogFormat format, const std::string& level);

// The text of one event without time and level (what follows them on the line).
std::string render(LogFormat format, std::string_view message, Fields fields);

void debug(std::string_view message, Fields fields = {});
void info(std::string_view message, Fields fields = {});
void warn(std::string_view message, Fields fields = {});
void error(std::string_view message, Fields fields = {});

}  // namespace hvmm::daemon::log
