// PVH entry state and register dumps.
#include "hvmm/vmm/boot/x86_state.h"

#include <fmt/format.h>

#include "hvmm/vmm/boot/boot_data.h"

namespace hvmm::vmm {
namespace {

constexpr uint64_t kCr0ProtectionEnable = 1u << 0;
constexpr uint64_t kCr0ExtensionType = 1u << 4;

// A flat 4 GiB segment with the given selector and type.
kvm_segment flat_segment(uint16_t selector, uint8_t type) {
  kvm_segment segment{};
  segment.base = 0;
  segment.limit = 0xffffffff;
  segment.selector = selector;
  segment.type = type;
  segment.present = 1;
  segment.dpl = 0;
  segment.db = 1;
  segment.s = 1;
  segment.g = 1;
  return segment;
}

// One "name=base/limit/selector" segment line.
std::string segment_line(const char* name, const kvm_segment& s) {
  return fmt::format("{:>3}={:#06x} base={:#018x} limit={:#010x} type={:#x} dpl={} db={} l={}\n",
                     name, s.selector, s.base, s.limit, s.type, s.dpl, s.db, s.l);
}

}  // namespace

// Flat protected mode with the GDT the boot data provides.
void set_pvh_entry_sregs(kvm_sregs& sregs) {
  sregs.cs = flat_segment(kCodeSelector, 0xb);          // execute/read, accessed
  kvm_segment data = flat_segment(kDataSelector, 0x3);  // read/write, accessed
  sregs.ds = data;
  sregs.es = data;
  sregs.fs = data;
  sregs.gs = data;
  sregs.ss = data;
  sregs.tr = kvm_segment{};
  sregs.tr.selector = kTssSelector;
  sregs.tr.limit = 0x67;
  sregs.tr.type = 0xb;  // busy 32-bit TSS
  sregs.tr.present = 1;
  sregs.gdt.base = kGdtAddress.value();
  sregs.gdt.limit = 4 * 8 - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cr0 = kCr0ProtectionEnable | kCr0ExtensionType;
  sregs.cr3 = 0;
  sregs.cr4 = 0;
  sregs.efer = 0;
}

// Entry point and start info pointer; everything else zero.
kvm_regs pvh_entry_regs(Ipa entry, Ipa start_info) {
  kvm_regs regs{};
  regs.rip = entry.value();
  regs.rbx = start_info.value();
  regs.rflags = 0x2;
  return regs;
}

// General registers four to a line, then segments, tables and control registers.
std::string format_register_dump(const kvm_regs& r, const kvm_sregs& s) {
  std::string out;
  out += fmt::format("rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n", r.rax, r.rbx, r.rcx,
                     r.rdx);
  out += fmt::format("rsi={:#018x} rdi={:#018x} rsp={:#018x} rbp={:#018x}\n", r.rsi, r.rdi, r.rsp,
                     r.rbp);
  out += fmt::format(" r8={:#018x}  r9={:#018x} r10={:#018x} r11={:#018x}\n", r.r8, r.r9, r.r10,
                     r.r11);
  out += fmt::format("r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n", r.r12, r.r13, r.r14,
                     r.r15);
  out += fmt::format("rip={:#018x} rflags={:#010x}\n", r.rip, r.rflags);
  out += segment_line("cs", s.cs) + segment_line("ds", s.ds) + segment_line("ss", s.ss) +
         segment_line("es", s.es) + segment_line("fs", s.fs) + segment_line("gs", s.gs) +
         segment_line("tr", s.tr);
  out += fmt::format("gdt={:#x}/{:#x} idt={:#x}/{:#x}\n", s.gdt.base, s.gdt.limit, s.idt.base,
                     s.idt.limit);
  out += fmt::format("cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x} apic_base={:#x}\n", s.cr0,
                     s.cr2, s.cr3, s.cr4, s.efer, s.apic_base);
  return out;
}

}  // namespace hvmm::vmm
