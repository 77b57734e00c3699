// User address spaces (UserMm) and ring-3 execution of built-in programs.
#pragma once

#include <cstdint>

#include "hvmm/guest/arch/gdt.h"
#include "hvmm/guest/mm/address_space.h"
#include "hvmm/guest/mm/spinlock.h"

namespace hvmm::guest {

// Where the user code page(s) and stack live in every user address space.
inline constexpr uint64_t kUserCodeBase = 0x400000;
inline constexpr uint64_t kUserStackTop = 0x7ff000000000ull;
inline constexpr uint64_t kUserStackSize = 64 * 1024;
inline constexpr uint64_t kUserBrkBase = 0x10000000;

// A user address space plus what TLB maintenance needs to know about it.
struct UserMm {
  mm::AddressSpace as;
  mm::SpinLock lock;      // serialises changes of `as` (faults, mmap/munmap/brk) across CPUs
  uint64_t cpu_mask = 0;  // CPUs that may hold its translations
  uint64_t tlb_gen = 0;   // bumped by every flush request
  uint64_t flushed_gen[arch::kMaxCpus] = {};  // generation each CPU has caught up with
};

// How a ring-3 run ended.
struct UserRun {
  int64_t exit_code = 0;   // exit() argument, or a negative kill code
  bool killed = false;     // ended by a fatal fault
  const char* cause = "";  // why it was killed
  uint64_t fault_address = 0;
  uint64_t syscalls = 0;
  uint64_t report = 0;     // last value passed to the report syscall
  uint64_t fault_tsc = 0;  // TSC ticks spent in guest/mm fault handling
};

// Kill codes (UserRun::exit_code when killed).
inline constexpr int64_t kKilledSegv = -11;
inline constexpr int64_t kKilledFault = -7;

// Create the ASID allocator and the VMA cache (after memory_init()).
void process_init();

// The ASID allocator (PCIDs).
mm::AsidAllocator& asid_allocator();

// Pages owned by the slab caches of address spaces and VMAs.
uint64_t process_slab_pages();

// Create an address space with the user code and a demand-paged stack. Null on no memory.
UserMm* mm_create();

// Tear down an address space: leave it on every CPU, free its frames and tables.
void mm_destroy(UserMm* mm);

// Load `mm` on the calling CPU (PCID-tagged CR3, flushing only when generations say so).
void switch_mm(UserMm& mm);

// Stop using any user address space on the calling CPU (back to the kernel tables).
void leave_mm();

// The user-mode address of a built-in program (a symbol of the .user.text section).
uint64_t user_program_address(const void* symbol);

// Run `program` in ring 3 on the calling CPU in `mm` with up to three arguments; return
// when it exits or is killed.
UserRun run_user(UserMm& mm, const void* program, uint64_t a0, uint64_t a1, uint64_t a2);

}  // namespace hvmm::guest
