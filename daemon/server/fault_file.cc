// The daemon's fault log (fault_file.h).
#include "hvmm/daemon/server/fault_file.h"

#include <chrono>

namespace hvmm::daemon {
namespace {

const char* resolution_name(const hvmm::v1::Fault& fault) {
  switch (fault.resolution()) {
    case hvmm::v1::FAULT_RESOLUTION_EMULATED:
      return fault.access() == hvmm::v1::ACCESS_WRITE ? "write-dropped" : "read-all-ones";
    case hvmm::v1::FAULT_RESOLUTION_ZERO_FILL:
      return "zero-fill";
    case hvmm::v1::FAULT_RESOLUTION_COPIED:
      return "restored";
    case hvmm::v1::FAULT_RESOLUTION_UNPROTECTED:
      return "unprotected";
    case hvmm::v1::FAULT_RESOLUTION_INJECTED:
      return "injected";
    case hvmm::v1::FAULT_RESOLUTION_FAILED:
      return "failed";
    case hvmm::v1::FAULT_RESOLUTION_WOKEN:
      return "woken";
    default:
      return "resolution-unknown";
  }
}

}  // namespace

vmm::FaultRecord fault_record(const hvmm::v1::Fault& fault) {
  vmm::FaultRecord record;
  record.time = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(fault.time_unix_ns())));
  record.vm = fault.vm();
  record.vmid = fault.vmid();
  record.vcpu = fault.vcpu();
  record.ipa = Ipa(fault.ipa());
  record.write = fault.access() == hvmm::v1::ACCESS_WRITE;
  record.size = fault.size();
  // The kinds are numbered alike (fault_kind.h); unknown numbers log as "kind-unknown".
  int kind = fault.kind() > 0 && static_cast<size_t>(fault.kind()) < vmm::kFaultKindCount
                 ? fault.kind()
                 : 0;
  record.kind = vmm::fault_kind_name(static_cast<vmm::FaultKind>(kind)).data();
  record.resolution = resolution_name(fault);
  record.latency_ns = fault.latency_ns();
  return record;
}

Result<std::unique_ptr<FaultFile>> FaultFile::open(const std::string& path) {
  auto file = vmm::open_log_file(path, "fault-log", vmm::LogOpenMode::kAppend);
  if (!file) {
    return file.error();
  }
  return std::unique_ptr<FaultFile>(new FaultFile(std::move(*file)));
}

}  // namespace hvmm::daemon
