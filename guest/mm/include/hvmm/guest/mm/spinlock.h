// SpinLock: the guest's one spinlock type (guest/mm and guest/kernel), with SpinGuard, its
// interrupt-saving guard.
//
// Allocations happen from interrupt context (GFP_ATOMIC), so a lock taken with interrupts
// on could deadlock against an interrupt on the same CPU: the guard saves and disables
// interrupts first, like spin_lock_irqsave. It lives here rather than in guest/kernel because
// guest/mm is portable: it reaches the CPU only through arch_hooks.h, so the same lock builds
// into the host library and runs under the unit and TSan tests. While it spins it calls
// arch::cpu_relax(), which in the kernel also answers TLB shootdowns: a CPU spinning with
// interrupts off must not leave a shootdown issued by the lock's holder waiting forever.
#pragma once

#include <atomic>
#include <cstdint>

#include "hvmm/guest/mm/arch_hooks.h"

namespace hvmm::guest::mm {

// A test-and-test-and-set lock; zero-initialised means unlocked.
class SpinLock {
 public:
  // Take the lock, spinning with pause until it is free.
  void lock() {
    while (held_.exchange(true, std::memory_order_acquire)) {
      while (held_.load(std::memory_order_relaxed)) {
        arch::cpu_relax();
      }
    }
  }
  // Release the lock.
  void unlock() { held_.store(false, std::memory_order_release); }
  // Report whether someone holds the lock (for assertions only).
  bool is_locked() const { return held_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> held_{false};
};

// Hold a SpinLock with interrupts disabled for the guard's lifetime.
class SpinGuard {
 public:
  explicit SpinGuard(SpinLock& lock) : lock_(lock), flags_(arch::irq_save()) { lock_.lock(); }
  ~SpinGuard() {
    lock_.unlock();
    arch::irq_restore(flags_);
  }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& lock_;
  uint64_t flags_;
};

// Keep interrupts off (and so stay on this CPU) for the guard's lifetime.
class IrqGuard {
 public:
  IrqGuard() : flags_(arch::irq_save()) {}
  ~IrqGuard() { arch::irq_restore(flags_); }
  IrqGuard(const IrqGuard&) = delete;
  IrqGuard& operator=(const IrqGuard&) = delete;

 private:
  uint64_t flags_;
};

}  // namespace hvmm::guest::mm
