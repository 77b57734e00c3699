// Ring-3 runs, system calls and the page-fault handler. A run enters ring 3 with iretq
// (user_enter); exit() or a fatal fault unwinds back with user_return(). Demand paging asks
// guest/mm's AddressSpace what a fault means and maps a zeroed frame when allowed.
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/gdt.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/fault.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/probe.h"
#include "hvmm/guest/process.h"
#include "hvmm/guest/syscall.h"
#include "hvmm/guest/tlb.h"

extern "C" uint64_t user_enter(uint64_t rip, uint64_t rsp, uint64_t a0, uint64_t a1, uint64_t a2);
extern "C" [[noreturn]] void user_return(uint64_t value);
extern "C" char syscall_entry[];

namespace hvmm::guest {

// The run in progress on a CPU, reached from per-CPU data.
struct Process {
  UserMm* mm;
  UserRun run;
};

namespace {

constexpr uint64_t kErrPresent = 1, kErrWrite = 2, kErrUser = 4, kErrFetch = 16;

// The run in progress on this CPU.
Process& current() {
  return *this_cpu().current;
}

// Flush what an unmap changed in the current process, then free the frames.
void flush_and_release(mm::MmuGather& gather) {
  if (gather.need_flush())
    tlb_flush_mm_range(*current().mm, gather.start().value(), gather.end().value(),
                       gather.tables_freed());
  gather.release();
}

// munmap(address, length). The TLB flush happens after the lock is dropped, so the lock is
// never held across the wait for other CPUs' acknowledgements.
int64_t sys_munmap(uint64_t addr, uint64_t len) {
  mm::MmuGather gather(&kmem().buddy);
  mm::MmResult r;
  {
    mm::SpinGuard guard(current().mm->lock);
    r = current().mm->as.munmap(VirtAddr(addr), len, gather);
  }
  flush_and_release(gather);
  return r.ok ? 0 : -22;
}

// brk(new_break).
int64_t sys_brk(uint64_t new_brk) {
  mm::MmuGather gather(&kmem().buddy);
  mm::MmResult r;
  {
    mm::SpinGuard guard(current().mm->lock);
    r = current().mm->as.brk(VirtAddr(new_brk), gather);
  }
  flush_and_release(gather);
  return r.ok ? static_cast<int64_t>(r.address.value()) : -12;
}

// mmap(length, prot): anonymous, placed by the kernel.
int64_t sys_mmap(uint64_t len, uint64_t prot) {
  mm::SpinGuard guard(current().mm->lock);
  mm::MmResult r = current().mm->as.mmap(VirtAddr(0), len, static_cast<uint32_t>(prot), false);
  return r.ok ? static_cast<int64_t>(r.address.value()) : -12;
}

// Classify the error code of #PF as guest/mm FaultAccess bits.
uint32_t fault_access(uint64_t error) {
  uint32_t access = mm::kFaultRead;
  if (error & kErrWrite)
    access |= mm::kFaultWrite;
  if (error & kErrFetch)
    access |= mm::kFaultExec;
  if (error & kErrPresent)
    access |= mm::kFaultPresent;
  return access;
}

uint64_t g_minor_faults = 0;

}  // namespace

// Minor faults counted by handle_page_fault().
uint64_t user_minor_faults() {
  return __atomic_load_n(&g_minor_faults, __ATOMIC_RELAXED);
}

// Dispatch one system call from ring 3 (interrupts are re-enabled: requests may need IPIs
// acknowledged by this CPU's peers, and the timer keeps ticking).
extern "C" void syscall_dispatch(TrapFrame* frame) {
  arch::sti();
  Process& p = current();
  ++p.run.syscalls;
  int64_t ret = -38;
  switch (frame->rax) {
    case kSysExit:
      arch::cli();
      user_return(frame->rdi);
    case kSysBrk:
      ret = sys_brk(frame->rdi);
      break;
    case kSysMmap:
      ret = sys_mmap(frame->rdi, frame->rsi);
      break;
    case kSysMunmap:
      ret = sys_munmap(frame->rdi, frame->rsi);
      break;
    case kSysReport:
      p.run.report = frame->rdi;
      ret = 0;
      break;
  }
  arch::cli();
  frame->rax = static_cast<uint64_t>(ret);
}

// Turn the #BP raised by the `syscall` entry into the system call it stands for: the
// frame's RIP/RFLAGS become the user's (RCX/R11, as `syscall` saved them) and CS/SS the
// user selectors, so the iretq at the end returns after the `syscall` instruction.
void syscall_from_entry(TrapFrame& frame) {
  frame.rip = frame.rcx;
  frame.rflags = (frame.r11 & 0xcd5) | 0x202;  // user-changeable flags, IF on
  frame.cs = arch::kUserCs;
  frame.ss = arch::kUserDs;
  syscall_dispatch(&frame);
}

// Record the ring-3 trap stack of this CPU (called by user_enter).
extern "C" void user_set_trap_stack(uint64_t rsp) {
  arch::tss_set_kernel_stack(this_cpu().cpu, rsp);
}

// End the run: report the cause and unwind to run_user().
void kill_user_process(TrapFrame& frame, const char* cause) {
  Process& p = current();
  p.run.killed = true;
  p.run.cause = cause;
  if (frame.vector == 14)
    printk_level(kLogInfo, "user: process killed: %s fault on %s of %lx at rip %lx\n", cause,
                 (frame.error_code & kErrFetch)   ? "fetch"
                 : (frame.error_code & kErrWrite) ? "write"
                                                  : "read",
                 p.run.fault_address, frame.rip);
  else
    printk_level(kLogInfo, "user: process killed: %s at rip %lx\n", cause, frame.rip);
  if (cmdline_get_number("loglevel", kLogInfo) >= kLogDebug)
    dump_frame(frame);
  user_return(static_cast<uint64_t>(frame.vector == 14 ? kKilledSegv : kKilledFault));
}

// #PF: kernel probes and kernel faults first, then user demand paging.
void handle_page_fault(TrapFrame& frame, uint64_t address) {
  if (probe_fixup(frame))
    return;
  bool user = (frame.error_code & kErrUser) != 0;
  if (!user || this_cpu().current == nullptr)
    panic_with_frame(kExitKernelFault, frame, "kernel page fault at %lx (%s%s)", address,
                     (frame.error_code & kErrWrite) ? "write" : "read",
                     (frame.error_code & kErrPresent) ? ", protection" : ", not present");
  Process& p = current();
  p.run.fault_address = address;
  mm::FaultDecision d;
  uint64_t t0 = arch::rdtsc();
  {
    mm::SpinGuard guard(p.mm->lock);
    d = p.mm->as.handle_fault(VirtAddr(address), fault_access(frame.error_code));
  }
  p.run.fault_tsc += arch::rdtsc() - t0;
  if (d == mm::FaultDecision::kMapZeroPage)
    __atomic_fetch_add(&g_minor_faults, 1, __ATOMIC_RELAXED);
  if (d == mm::FaultDecision::kMapZeroPage || d == mm::FaultDecision::kSpurious)
    return;
  kill_user_process(frame, mm::fault_decision_name(d));
}

// Point LSTAR at the entry's lower-half alias (see process.h), select kernel CS in STAR and
// mask IF/DF/TF/AC on entry.
void syscall_init_this_cpu() {
  arch::wrmsr(arch::kMsrStar, (uint64_t{arch::kKernelCs} << 32) | (uint64_t{0x10 | 3} << 48));
  arch::wrmsr(arch::kMsrLstar, kernel_image_phys(syscall_entry).value());
  arch::wrmsr(arch::kMsrFmask, 0x40700);  // AC, DF, IF, TF
}

// Enter ring 3 on this CPU in `mm` and wait for the program to end.
UserRun run_user(UserMm& mm, const void* program, uint64_t a0, uint64_t a1, uint64_t a2) {
  Process p{&mm, {}};
  PerCpu& me = this_cpu();
  uint64_t flags = arch::irq_save();
  switch_mm(mm);
  me.current = &p;
  int64_t code = static_cast<int64_t>(
      user_enter(user_program_address(program), kUserStackTop - 64, a0, a1, a2));
  me.current = nullptr;
  me.lazy_tlb = 1;  // keep the tables loaded until someone needs them (lazy TLB)
  arch::irq_restore(flags);
  p.run.exit_code = code;
  return p.run;
}

}  // namespace hvmm::guest
