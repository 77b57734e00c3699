// FaultLog: stage-2 faults as JSON lines.
//
// One line per fault, with the fields
//   time (UTC, RFC 3339 with nanoseconds), vm, vmid, vcpu, ipa, access ("read"/"write"),
//   size, kind, resolution, latency_ns
// e.g. {"time":"2026-01-01T00:00:00.000000001Z","vm":"run","vmid":1,"vcpu":0,
//       "ipa":"0xd0000000","access":"read","size":4,"kind":"unbacked","resolution":
//       "read-all-ones","latency_ns":812}
// Every fault is counted; printing is rate limited (a token bucket) so a guest hammering
// an unbacked address cannot flood the log. The log is a LogFile opened before the VM (or
// stderr); a line a full FIFO or terminal cannot take without blocking is dropped and
// counted. A sink (set_sink) sees every record, printed or not, as it is recorded: the VM
// process forwards them to its daemon. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/fault/fault_kind.h"
#include "hvmm/vmm/host/log_file.h"

namespace hvmm::vmm {

// FaultRecord is one fault as logged. `kind` and `resolution` are log names of FaultKind and
// FaultResolution (fault_kind.h); set_outcome() derives them from the enums.
struct FaultRecord {
  std::chrono::system_clock::time_point time;
  std::string vm;
  uint32_t vmid = 0;
  std::optional<unsigned> vcpu;  // none: a thread that is no vCPU (logged as null)
  Ipa ipa;
  bool write = false;
  unsigned size = 0;  // bytes accessed (MMIO) or resolved (userfaultfd: the fault-around run)
  const char* kind = "";
  const char* resolution = "";
  uint64_t latency_ns = 0;
  // The enums `kind` and `resolution` name (FaultKind{0}: set_outcome() was not called).
  FaultKind kind_value = FaultKind{0};
  FaultResolution resolution_value = FaultResolution::kFailed;

  // Set `kind` and `resolution` (and the enum values) from the two enums.
  void set_outcome(FaultKind fault_kind, FaultResolution fault_resolution) {
    kind = fault_kind_name(fault_kind).data();
    resolution = fault_resolution_name(fault_resolution).data();
    kind_value = fault_kind;
    resolution_value = fault_resolution;
  }
};

// Escape `text` for the inside of a JSON string literal (quotes, backslashes, control
// characters); the fault log and the --stats writer share it.
std::string json_escape(const std::string& text);

// Format one record as a single JSON object (no trailing newline).
std::string format_fault_record(const FaultRecord& record);

class FaultLog {
 public:
  static constexpr unsigned kBurst = 200;
  static constexpr unsigned kPerSecond = 100;

  // Called for every record, on the thread that recorded it (a vCPU or a fault handler
  // thread): it must not block, and must not call back into this log.
  using Sink = std::function<void(const FaultRecord&)>;

  // Log to `file`, or to stderr when there is none.
  explicit FaultLog(std::optional<LogFile> file) : file_(std::move(file)) {}

  // Count the fault, give it to the sink, and print it unless the rate limit says otherwise.
  void record(const FaultRecord& record);
  // Give every later record to `sink` as well (an empty one removes it). Any time, any thread.
  void set_sink(Sink sink);
  // Print one line that is not a fault (a userfaultfd event) under the same rate limit;
  // it is not counted as a fault.
  void note(const std::string& line);
  uint64_t recorded() const;
  uint64_t suppressed() const;
  // Printed lines the log could not take (a full FIFO or terminal).
  uint64_t dropped() const;
  // The end-of-run summary line for stderr, or "" when every fault was logged; `by_kind`
  // (the counts of every fault source, "missing 512, unbacked 3") is added when not empty.
  std::string summary(std::string_view by_kind = {}) const;

 private:
  bool take_token(std::chrono::steady_clock::time_point now);
  void write_line(const std::string& line);

  std::optional<LogFile> file_;  // none: stderr
  mutable std::mutex lock_;
  std::shared_ptr<const Sink> sink_;  // copied under lock_, called outside it
  uint64_t recorded_ = 0;
  uint64_t suppressed_ = 0;
  uint64_t dropped_ = 0;
  double tokens_ = kBurst;
  std::chrono::steady_clock::time_point last_refill_{};
};

}  // namespace hvmm::vmm
