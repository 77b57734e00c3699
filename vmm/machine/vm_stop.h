// VmStop: who ended a VM, with which exit status and why, decided once.
//
// A VM ends either by the guest's own choice (a byte written to port 0xf4, whatever its
// value, even 120-124) or by the VMM's (triple fault, failed entry, KVM internal error,
// unexpected exit, guest shutdown/reset without port 0xf4, a stop signal, a host request).
// The first request wins; later ones (a second vCPU failing, a signal during the stop) are
// ignored. Only a VMM decision has a report line, so a person or a script can tell a guest
// that wrote 122 from a triple fault. Thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

namespace hvmm::vmm {

// "hvmm: VM ended by the VMM: REASON (exit status N)", the one line the VMM prints.
std::string format_vmm_end_line(std::string_view reason, int status);

class VmStop {
 public:
  // The guest wrote `status` to port 0xf4. True when this request decided the end.
  bool guest_exit(int status);
  // The VMM ends the VM with `status` because of `reason` (e.g. "triple fault on vCPU 0").
  // True when this request decided the end.
  bool vmm_end(int status, std::string reason);

  bool requested() const;
  // The decided exit status (0 before any request).
  int status() const;
  // The line to print on stderr for a VMM decision; "" for the guest's own exit or none.
  std::string report_line() const;
  // Why the VM ended, in words: "guest exited with status N" or the VMM's reason ("" before
  // any request).
  std::string reason() const;

 private:
  // Record the first request; false when one was already recorded.
  bool decide(int status, std::string reason);

  mutable std::mutex lock_;
  bool requested_ = false;
  int status_ = 0;
  std::string reason_;  // empty: the guest's own exit
};

}  // namespace hvmm::vmm
