// Per-vCPU CPUID tables.
#include "hvmm/vmm/kvm/cpuid.h"

namespace hvmm::vmm {

// Patch the APIC id fields; every other leaf stays as KVM reports it.
std::vector<kvm_cpuid_entry2> cpuid_for_vcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                             unsigned apic_id, unsigned vcpu_count) {
  std::vector<kvm_cpuid_entry2> entries = supported;
  for (kvm_cpuid_entry2& entry : entries) {
    if (entry.function == 1) {
      entry.ebx = (entry.ebx & 0x0000ffff) | ((apic_id & 0xff) << 24) | ((vcpu_count & 0xff) << 16);
      entry.edx |= 1u << 28;  // HTT: EBX[23:16] is valid
    } else if (entry.function == 0xb || entry.function == 0x1f) {
      entry.edx = apic_id;
    }
  }
  return entries;
}

}  // namespace hvmm::vmm
