// A simple test-and-test-and-set spinlock for the kernel, with an interrupt-saving guard.
#pragma once

#include <cstdint>

#include "hvmm/guest/arch/cpu.h"

namespace hvmm::guest {

// Answer a TLB shootdown addressed to this CPU (tlb.h); spinning code calls it.
void tlb_service_pending();

// A spinlock word: 0 free, 1 held.
class Spinlock {
 public:
  // Spin until the lock is taken.
  void lock() {
    while (__atomic_exchange_n(&word_, 1u, __ATOMIC_ACQUIRE) != 0) {
      while (__atomic_load_n(&word_, __ATOMIC_RELAXED) != 0) {
        tlb_service_pending();  // interrupts may be off: keep answering shootdowns
        arch::pause();
      }
    }
  }
  // Release the lock.
  void unlock() { __atomic_store_n(&word_, 0u, __ATOMIC_RELEASE); }

 private:
  uint32_t word_ = 0;
};

// Holds a spinlock with interrupts disabled for the guard's lifetime.
class IrqSpinGuard {
 public:
  explicit IrqSpinGuard(Spinlock& lock) : lock_(lock), flags_(arch::irq_save()) { lock_.lock(); }
  ~IrqSpinGuard() {
    lock_.unlock();
    arch::irq_restore(flags_);
  }
  IrqSpinGuard(const IrqSpinGuard&) = delete;
  IrqSpinGuard& operator=(const IrqSpinGuard&) = delete;

 private:
  Spinlock& lock_;
  uint64_t flags_;
};

}  // namespace hvmm::guest
