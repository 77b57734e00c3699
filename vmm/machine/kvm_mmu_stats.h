// KvmMmuStatsSource: KVM's MMU figures of one VM (memory_controls.h's KvmMmuStats) from its
// binary statistics: the VM's "pages_4k", "pages_2m" and "pages_1g" (leaves of KVM's own
// stage-2 tables, NPT/EPT or shadow) and every vCPU's "pf_taken" and "pf_fixed", summed.
//
// The stats fds are opened once, when the VM is built (a VM process may be sandboxed later:
// reading then needs only pread); a kernel without KVM_CAP_BINARY_STATS_FD gives a source
// that reports available = false. A statistic the kernel does not have reads as 0.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/kvm/kvm_stats.h"
#include "hvmm/vmm/machine/memory_controls.h"

namespace hvmm::vmm {

class KvmMmuStatsSource {
 public:
  // The stats files of `vm` and `vcpus`; unavailable (not an error) without the capability.
  static Result<KvmMmuStatsSource> open(const KvmVm& vm, std::span<KvmVcpu* const> vcpus);
  // A source that reports available = false.
  KvmMmuStatsSource() = default;

  // The figures now (all zero and available = false when unavailable or a read fails).
  KvmMmuStats read() const;
  bool available() const { return vm_.has_value(); }

 private:
  std::optional<KvmStatsFile> vm_;
  std::vector<KvmStatsFile> vcpus_;
};

}  // namespace hvmm::vmm
