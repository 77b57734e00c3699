// x86 register state: the PVH entry state and the register dump printed when a vCPU dies.
#pragma once

#include <linux/kvm.h>

#include <string>

#include "hvmm/base/address.h"

namespace hvmm::vmm {

// Turn `sregs` (as read from a fresh vCPU) into the PVH entry state: 32-bit protected
// mode, paging off, CR0 = PE|ET, CR4 = 0, flat CS/DS/ES/SS/FS/GS and a 32-bit TSS from the
// GDT at kGdtAddress (boot_data.h).
void set_pvh_entry_sregs(kvm_sregs& sregs);

// The PVH entry registers: RIP = entry, RBX = start info, EFLAGS = reserved bit only.
kvm_regs pvh_entry_regs(Ipa entry, Ipa start_info);

// A multi-line dump of general, segment and control registers for a crash report.
std::string format_register_dump(const kvm_regs& regs, const kvm_sregs& sregs);

}  // namespace hvmm::vmm
