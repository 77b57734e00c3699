// The host's memory figures (host_sample.h).
#include "hvmm/daemon/server/policy/host_sample.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

namespace hvmm::daemon::policy {
namespace {

// The number after `key` on the line that starts with it, in kB; none when absent.
std::optional<uint64_t> meminfo_kib(std::string_view text, std::string_view key) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    std::string_view line = text.substr(at, end == std::string_view::npos ? end : end - at);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      std::string rest(line.substr(key.size() + 1));
      char* stop = nullptr;
      unsigned long long value = std::strtoull(rest.c_str(), &stop, 10);
      if (stop == rest.c_str()) {
        return std::nullopt;
      }
      return value;
    }
    if (end == std::string_view::npos) {
      break;
    }
    at = end + 1;
  }
  return std::nullopt;
}

// The avg10 of the line starting with `kind` ("some avg10=1.23 avg60=...").
std::optional<double> pressure_avg10(std::string_view text, std::string_view kind) {
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(std::string(kind) + " ", 0) != 0) {
      continue;
    }
    size_t at = line.find("avg10=");
    if (at == std::string::npos) {
      return std::nullopt;
    }
    const char* start = line.c_str() + at + 6;
    char* stop = nullptr;
    double value = std::strtod(start, &stop);
    if (stop == start || !(value >= 0 && value <= 100)) {
      return std::nullopt;
    }
    return value;
  }
  return std::nullopt;
}

Result<std::string> read_text(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return make_error(ErrorCode::kUnavailable, "cannot read '{}'", path);
  }
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

uint64_t now_unix_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Result<Meminfo> parse_meminfo(std::string_view text) {
  auto total = meminfo_kib(text, "MemTotal");
  auto available = meminfo_kib(text, "MemAvailable");
  if (!total || !available) {
    return make_error(ErrorCode::kInvalidArgument, "meminfo: no {} line with a number",
                      !total ? "MemTotal" : "MemAvailable");
  }
  return Meminfo{*total * 1024, *available * 1024};
}

Result<Pressure> parse_pressure(std::string_view text) {
  auto some = pressure_avg10(text, "some");
  if (!some) {
    return make_error(ErrorCode::kInvalidArgument,
                      "pressure: no 'some' line with an avg10 of 0..100");
  }
  return Pressure{*some, pressure_avg10(text, "full").value_or(0)};
}

Result<HostSample> read_host_sample(const std::string& meminfo_path,
                                    const std::string& pressure_path) {
  auto meminfo_text = read_text(meminfo_path);
  HVMM_TRY(meminfo_text);
  auto meminfo = parse_meminfo(*meminfo_text);
  if (!meminfo) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {}", meminfo_path, meminfo.error().message);
  }
  HostSample sample;
  sample.time_unix_ns = now_unix_ns();
  sample.mem_total_bytes = meminfo->total_bytes;
  sample.mem_available_bytes = meminfo->available_bytes;
  if (auto pressure_text = read_text(pressure_path); pressure_text) {
    if (auto pressure = parse_pressure(*pressure_text); pressure) {
      sample.pressure_some_avg10 = pressure->some_avg10;
      sample.pressure_full_avg10 = pressure->full_avg10;
      sample.pressure_available = true;
    }
  }
  return sample;
}

}  // namespace hvmm::daemon::policy
