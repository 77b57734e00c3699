// The daemon's fault log: the Fault events of every VM process as JSON lines, in the format
// of `hvmm run --fault-log` (vmm/fault/fault_log.h: time, vm, vmid, vcpu, ipa, access, size,
// kind, resolution, latency_ns), rate limited and counted by the same FaultLog.
//
// The API's resolutions are coarser than the log's: EMULATED is written as "read-all-ones" or
// "write-dropped" by the access, INJECTED as "injected".
#pragma once

#include <memory>
#include <string>

#include "hvmm/base/result.h"
#include "hvmm/v1/stage2.pb.h"
#include "hvmm/vmm/fault/fault_log.h"

namespace hvmm::daemon {

// The fault log record of an API fault.
vmm::FaultRecord fault_record(const hvmm::v1::Fault& fault);

class FaultFile {
 public:
  // Open (append to) `path`; errors name "fault-log".
  static Result<std::unique_ptr<FaultFile>> open(const std::string& path);
  void record(const hvmm::v1::Fault& fault) { log_.record(fault_record(fault)); }
  uint64_t recorded() const { return log_.recorded(); }

 private:
  explicit FaultFile(vmm::LogFile file) : log_(std::move(file)) {}
  vmm::FaultLog log_;
};

}  // namespace hvmm::daemon
