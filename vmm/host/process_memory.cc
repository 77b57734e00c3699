// Reading a process's memory figures from /proc/<pid>/status.
#include "hvmm/vmm/host/process_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string>

#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {
namespace {

// Return the value of the "<name>:   N kB" line in bytes, or nullopt when there is none.
std::optional<uint64_t> kilobyte_field(std::string_view status, std::string_view name) {
  size_t at = 0;
  while (at < status.size()) {
    size_t end = status.find('\n', at);
    if (end == std::string_view::npos)
      end = status.size();
    std::string_view line = status.substr(at, end - at);
    at = end + 1;
    if (line.size() <= name.size() || !line.starts_with(name) || line[name.size()] != ':')
      continue;
    line.remove_prefix(name.size() + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
      line.remove_prefix(1);
    uint64_t kib = 0;
    auto [rest, error] = std::from_chars(line.data(), line.data() + line.size(), kib);
    if (error != std::errc() || std::string_view(rest, line.data() + line.size()) != " kB")
      return std::nullopt;
    return kib * 1024;
  }
  return std::nullopt;
}

}  // namespace

Result<ProcessMemory> parse_process_status(std::string_view status) {
  ProcessMemory memory;
  const std::pair<const char*, uint64_t*> fields[] = {
      {"VmRSS", &memory.rss},        {"VmHWM", &memory.rss_peak},     {"RssAnon", &memory.rss_anon},
      {"RssFile", &memory.rss_file}, {"RssShmem", &memory.rss_shmem},
  };
  for (const auto& [name, value] : fields) {
    auto bytes = kilobyte_field(status, name);
    if (!bytes)
      return make_error(ErrorCode::kInternal, "process status: no readable \"{}: N kB\" line",
                        name);
    *value = *bytes;
  }
  return memory;
}

Result<ProcessMemory> read_process_memory(pid_t pid) {
  const std::string path = pid == 0 ? "/proc/self/status" : fmt::format("/proc/{}/status", pid);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid())
    return make_error(ErrorCode::kUnavailable, "open {}: {}", path, std::strerror(errno));
  std::string text;
  std::array<char, 4096> chunk;
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return make_error(ErrorCode::kInternal, "read {}: {}", path, std::strerror(errno));
    if (n == 0)
      break;
    text.append(chunk.data(), static_cast<size_t>(n));
  }
  return parse_process_status(text);
}

}  // namespace hvmm::vmm
