// Per-vCPU CPUID: KVM's supported leaves with the vCPU's own APIC id filled in.
#pragma once

#include <linux/kvm.h>

#include <vector>

namespace hvmm::vmm {

// Return `supported` with leaf 1 EBX[31:24] (initial APIC id) and leaves 0xB / 0x1F EDX
// (x2APIC id) set to `apic_id`, and leaf 1 EBX[23:16] to the logical CPU count.
std::vector<kvm_cpuid_entry2> cpuid_for_vcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                             unsigned apic_id, unsigned vcpu_count);

}  // namespace hvmm::vmm
