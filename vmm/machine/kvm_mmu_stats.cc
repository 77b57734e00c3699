// KVM's MMU figures from the VM's and the vCPUs' binary stats files.
#include "hvmm/vmm/machine/kvm_mmu_stats.h"

#include <linux/kvm.h>

#include <array>
#include <string_view>

namespace hvmm::vmm {
namespace {

constexpr std::array<std::string_view, 3> kVmStats = {"pages_4k", "pages_2m", "pages_1g"};
constexpr std::array<std::string_view, 2> kVcpuStats = {"pf_taken", "pf_fixed"};

}  // namespace

// The capability is asked of the VM fd (what this VM offers).
Result<KvmMmuStatsSource> KvmMmuStatsSource::open(const KvmVm& vm,
                                                  std::span<KvmVcpu* const> vcpus) {
  KvmMmuStatsSource source;
  if (vm.check_extension(KVM_CAP_BINARY_STATS_FD) <= 0)
    return source;
  auto vm_file = KvmStatsFile::open(vm.fd(), "the VM");
  HVMM_TRY(vm_file);
  for (KvmVcpu* vcpu : vcpus) {
    auto file = KvmStatsFile::open(vcpu->fd(), fmt::format("vCPU {}", vcpu->id()));
    HVMM_TRY(file);
    source.vcpus_.push_back(std::move(*file));
  }
  source.vm_ = std::move(*vm_file);
  return source;
}

// A failed read (it should not happen once the files are open) reads as unavailable rather
// than as half the figures.
KvmMmuStats KvmMmuStatsSource::read() const {
  if (!vm_)
    return {};
  auto pages = vm_->read(kVmStats);
  if (!pages)
    return {};
  KvmMmuStats stats;
  stats.available = true;
  stats.pages_4k = (*pages)[0].value_or(0);
  stats.pages_2m = (*pages)[1].value_or(0);
  stats.pages_1g = (*pages)[2].value_or(0);
  for (const KvmStatsFile& vcpu : vcpus_) {
    auto faults = vcpu.read(kVcpuStats);
    if (!faults)
      return {};
    stats.pf_taken += (*faults)[0].value_or(0);
    stats.pf_fixed += (*faults)[1].value_or(0);
  }
  return stats;
}

}  // namespace hvmm::vmm
