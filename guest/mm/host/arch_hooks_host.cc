// The arch hooks of the host build: fake RAM, fake CPU ids, a counting fake TLB.
#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "arena_state.h"
#include "hvmm/guest/mm/arch_hooks.h"
#include "hvmm/guest/mm/host/arena.h"

namespace hvmm::guest::mm {
namespace {

uint8_t* g_arena_base = nullptr;
size_t g_arena_size = 0;
std::atomic<unsigned> g_cpu_count{1};
std::atomic<unsigned> g_next_cpu{0};
thread_local int t_cpu = -1;
std::atomic<uint64_t> g_flushes{0};
std::atomic<uint64_t> g_last_start{0};
std::atomic<uint64_t> g_last_end{0};

}  // namespace

namespace host {
namespace detail {

// Remember the arena the address hooks translate through.
void set_current_arena(uint8_t* base, size_t size) {
  g_arena_base = base;
  g_arena_size = size;
}

}  // namespace detail

// Set the number of fake CPUs.
void set_cpu_count(unsigned count) {
  g_cpu_count = count == 0 ? 1 : (count > kMaxCpus ? kMaxCpus : count);
}

// Pin the calling thread to fake CPU `cpu`.
void set_this_cpu(unsigned cpu) {
  t_cpu = static_cast<int>(cpu % kMaxCpus);
}

// Return the fake TLB counters.
FlushStats flush_stats() {
  return FlushStats{g_flushes.load(), VirtAddr(g_last_start.load()), VirtAddr(g_last_end.load())};
}

// Zero the fake TLB counters.
void reset_flush_stats() {
  g_flushes = 0;
  g_last_start = 0;
  g_last_end = 0;
}

}  // namespace host

namespace arch {

// Give each new thread the next CPU id (wrapping at kMaxCpus), so threads act as CPUs.
unsigned this_cpu() {
  if (t_cpu < 0) {
    t_cpu = static_cast<int>(g_next_cpu.fetch_add(1) % kMaxCpus);
  }
  return static_cast<unsigned>(t_cpu);
}

// Report the configured fake CPU count.
unsigned cpu_count() {
  return g_cpu_count.load(std::memory_order_relaxed);
}

// Translate a fake physical address into the arena; outside it is a bug.
void* phys_to_virt(PhysAddr pa) {
  if (g_arena_base == nullptr || pa.value() >= g_arena_size) {
    std::fprintf(stderr, "phys_to_virt(0x%llx) outside the fake arena\n",
                 static_cast<unsigned long long>(pa.value()));
    std::abort();
  }
  return g_arena_base + pa.value();
}

// Translate an arena pointer back into a fake physical address.
PhysAddr virt_to_phys(const void* va) {
  const auto* p = static_cast<const uint8_t*>(va);
  if (g_arena_base == nullptr || p < g_arena_base || p >= g_arena_base + g_arena_size) {
    std::fprintf(stderr, "virt_to_phys(%p) outside the fake arena\n", va);
    std::abort();
  }
  return PhysAddr(static_cast<uint64_t>(p - g_arena_base));
}

// Count the flush (there is no TLB on the host side).
void flush_tlb_kernel_range(VirtAddr start, VirtAddr end) {
  g_flushes.fetch_add(1);
  g_last_start = start.value();
  g_last_end = end.value();
}

// No interrupts on the host: nothing to save.
uint64_t irq_save() {
  return 0;
}
void irq_restore(uint64_t) {}

// Spin politely.
void cpu_relax() {
  __builtin_ia32_pause();
}

// Print and abort.
void mm_panic(const char* message) {
  std::fprintf(stderr, "mm_panic: %s\n", message);
  std::abort();
}

}  // namespace arch
}  // namespace hvmm::guest::mm
