// VmContext: what the VM process's request handlers work on (one per process).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "hvmm/base/address.h"
#include "hvmm/daemon/vmproc/notifier_watch.h"
#include "hvmm/daemon/vmproc/page_token.h"
#include "hvmm/vmm/machine/machine.h"

namespace hvmm::daemon::vmproc {

struct VmContext {
  vmm::Machine& machine;
  std::string name;
  uint32_t vmid = 0;
  NotifierWatch& watch;
  const PageTokens& tokens;
  // Set once Machine::run() returned: waits give up, new requests are refused.
  std::atomic<bool>& ended;

  // [0, 2^ipa_bits): what ranges in requests must lie in.
  IpaRange ipa_space() const { return IpaRange{Ipa(0), machine.physical().map().space().size()}; }
  // [0, end of the last RAM region): "all of guest RAM" for ranges left unset.
  IpaRange guest_ram() const {
    const auto& ram = machine.physical().ram();
    return ram.empty() ? IpaRange{} : IpaRange{Ipa(0), ram.back().range.end().value()};
  }
};

}  // namespace hvmm::daemon::vmproc
