// Stage-2 fault records as rate-limited JSON lines.
#include "hvmm/vmm/fault/fault_log.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace hvmm::vmm {

// Escape a string for a JSON string literal.
std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

// "2026-01-01T00:00:00.000000001Z"
std::string rfc3339(std::chrono::system_clock::time_point time) {
  auto since_epoch = time.time_since_epoch();
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds);
  std::time_t t = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  gmtime_r(&t, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     nanos.count());
}

}  // namespace

// One JSON object with the fields in a fixed order.
std::string format_fault_record(const FaultRecord& r) {
  return fmt::format(
      "{{\"time\":\"{}\",\"vm\":\"{}\",\"vmid\":{},\"vcpu\":{},\"ipa\":\"{:#x}\","
      "\"access\":\"{}\",\"size\":{},\"kind\":\"{}\",\"resolution\":\"{}\",\"latency_ns\":{}}}",
      rfc3339(r.time), json_escape(r.vm), r.vmid, r.vcpu ? fmt::format("{}", *r.vcpu) : "null",
      r.ipa.value(), r.write ? "write" : "read", r.size, r.kind, r.resolution, r.latency_ns);
}

// Refill the bucket for the time elapsed and take one token if there is one.
bool FaultLog::take_token(std::chrono::steady_clock::time_point now) {
  if (last_refill_ != std::chrono::steady_clock::time_point{}) {
    double elapsed = std::chrono::duration<double>(now - last_refill_).count();
    tokens_ = std::min<double>(kBurst, tokens_ + elapsed * kPerSecond);
  }
  last_refill_ = now;
  if (tokens_ < 1.0) {
    return false;
  }
  tokens_ -= 1.0;
  return true;
}

// Count, hand to the sink, rate-limit and write one line with a single write() so lines
// never interleave. The sink runs outside the lock (its copy keeps it alive meanwhile).
void FaultLog::record(const FaultRecord& record) {
  std::shared_ptr<const Sink> sink;
  bool print = false;
  {
    std::lock_guard guard(lock_);
    ++recorded_;
    sink = sink_;
    print = take_token(std::chrono::steady_clock::now());
    if (!print) {
      ++suppressed_;
    }
  }
  if (sink) {
    (*sink)(record);
  }
  if (print) {
    write_line(format_fault_record(record) + "\n");
  }
}

// Replace the sink; a record being delivered keeps the previous one until it returns.
void FaultLog::set_sink(Sink sink) {
  auto next = sink ? std::make_shared<const Sink>(std::move(sink)) : nullptr;
  std::lock_guard guard(lock_);
  sink_ = std::move(next);
}

// Rate-limit and write one line that is not a fault.
void FaultLog::note(const std::string& line) {
  {
    std::lock_guard guard(lock_);
    if (!take_token(std::chrono::steady_clock::now())) {
      return;
    }
  }
  write_line(line + "\n");
}

// Write `line` with one write() to the log or stderr; count it dropped when it did not fit.
void FaultLog::write_line(const std::string& line) {
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(line.data()), line.size());
  if (!file_) {
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, bytes.data(), bytes.size());
    return;
  }
  if (write_log(*file_, bytes) != bytes.size()) {
    std::lock_guard guard(lock_);
    ++dropped_;
  }
}

// Faults seen, printed or not.
uint64_t FaultLog::recorded() const {
  std::lock_guard guard(lock_);
  return recorded_;
}

// Faults counted but not printed because of the rate limit.
uint64_t FaultLog::suppressed() const {
  std::lock_guard guard(lock_);
  return suppressed_;
}

// Lines lost to a log that had no room.
uint64_t FaultLog::dropped() const {
  std::lock_guard guard(lock_);
  return dropped_;
}

// Mention the faults that are not in the log, and why.
std::string FaultLog::summary(std::string_view by_kind) const {
  std::lock_guard guard(lock_);
  if (suppressed_ == 0 && dropped_ == 0) {
    return "";
  }
  std::string text =
      fmt::format("hvmm: {} stage-2 faults, {} not logged (rate limit)", recorded_, suppressed_);
  if (dropped_ > 0) {
    text += fmt::format(", {} dropped (fault log '{}' was full)", dropped_, file_->path);
  }
  if (!by_kind.empty()) {
    text += fmt::format("; counted by kind: {}", by_kind);
  }
  return text + "\n";
}

}  // namespace hvmm::vmm
