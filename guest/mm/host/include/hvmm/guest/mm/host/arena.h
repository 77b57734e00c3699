// The host stand-in for a guest's machine: a fake physical memory arena and fake CPUs.
//
// Physical address p of the fake machine is byte p of an anonymous mapping, so
// phys_to_virt/virt_to_phys are an offset. Only one arena is current at a time (the arch
// hooks are free functions). A test simulates CPUs either with threads (each thread gets
// its own CPU id on first use) or by switching the calling thread's id with set_this_cpu.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hvmm/base/address.h"

namespace hvmm::guest::mm::host {

// An anonymous mapping standing for guest RAM [0, size); current while it lives.
class PhysArena {
 public:
  // Map `size` bytes (rounded to 4 KiB) and make this the current arena. Aborts on failure.
  explicit PhysArena(size_t size);
  ~PhysArena();
  PhysArena(const PhysArena&) = delete;
  PhysArena& operator=(const PhysArena&) = delete;

  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }

 private:
  uint8_t* base_;
  size_t size_;
};

// Set how many CPUs cpu_count() reports (1..kMaxCpus).
void set_cpu_count(unsigned count);
// Make the calling thread act as CPU `cpu` from now on.
void set_this_cpu(unsigned cpu);

// Counters of the fake TLB: calls to flush_tlb_kernel_range and the last range.
struct FlushStats {
  uint64_t kernel_range_flushes = 0;
  VirtAddr last_start;
  VirtAddr last_end;
};
FlushStats flush_stats();
void reset_flush_stats();

}  // namespace hvmm::guest::mm::host
