// The first stop request of a VM, and the VMM's report line.
#include "hvmm/vmm/machine/vm_stop.h"

#include <fmt/format.h>

namespace hvmm::vmm {

// One line, always ending with the status, so scripts can match it.
std::string format_vmm_end_line(std::string_view reason, int status) {
  return fmt::format("hvmm: VM ended by the VMM: {} (exit status {})\n", reason, status);
}

// A guest exit carries no reason: hvmm prints nothing for it.
bool VmStop::guest_exit(int status) {
  return decide(status, "");
}

// A VMM decision always has a reason (an empty one is named, never silent).
bool VmStop::vmm_end(int status, std::string reason) {
  return decide(status, reason.empty() ? std::string("no reason given") : std::move(reason));
}

// First caller wins.
bool VmStop::decide(int status, std::string reason) {
  std::lock_guard guard(lock_);
  if (requested_) {
    return false;
  }
  requested_ = true;
  status_ = status;
  reason_ = std::move(reason);
  return true;
}

// Whether any request was made.
bool VmStop::requested() const {
  std::lock_guard guard(lock_);
  return requested_;
}

// The winning status.
int VmStop::status() const {
  std::lock_guard guard(lock_);
  return status_;
}

// The VMM's line, or nothing for a guest exit.
std::string VmStop::report_line() const {
  std::lock_guard guard(lock_);
  return reason_.empty() ? std::string() : format_vmm_end_line(reason_, status_);
}

std::string VmStop::reason() const {
  std::lock_guard guard(lock_);
  if (!requested_) {
    return "";
  }
  return reason_.empty() ? fmt::format("guest exited with status {}", status_) : reason_;
}

}  // namespace hvmm::vmm
