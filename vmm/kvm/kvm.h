// RAII wrappers for /dev/kvm, a KVM VM and a KVM vCPU.
//
// Every ioctl failure becomes an Error naming the ioctl and the errno text, and the start-up
// checks turn the common set-up problems into messages a person can act on: /dev/kvm
// missing, permission denied, or a capability missing (by name).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

// Kvm is the open /dev/kvm system fd.
class Kvm {
 public:
  // Open `path` and check the API version and every capability hvmm needs.
  static Result<Kvm> open(const char* path = "/dev/kvm");

  // KVM_CHECK_EXTENSION on the system fd: 0 when absent, otherwise the capability's value.
  int check_extension(long capability) const;
  // The most vCPUs one VM may have (KVM_CAP_MAX_VCPUS, falling back to NR_VCPUS).
  unsigned max_vcpus() const;
  // The size of each vCPU's shared kvm_run area.
  size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
  // KVM_GET_SUPPORTED_CPUID: every leaf KVM can expose to a guest.
  Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  int fd() const { return fd_.get(); }

 private:
  explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<void> check_capabilities();

  UniqueFd fd_;
  size_t vcpu_mmap_size_ = 0;
};

// How the dirty ring was enabled (KvmVm::enable_dirty_ring).
struct DirtyRingSetup {
  uint32_t entries = 0;         // per vCPU, a power of two
  bool acquire_release = true;  // KVM_CAP_DIRTY_LOG_RING_ACQ_REL, else KVM_CAP_DIRTY_LOG_RING
};

// KvmVm is one VM fd: memslots, the in-kernel irqchip and interrupt lines.
class KvmVm {
 public:
  // Create a VM with the TSS and identity-map pages placed and the in-kernel irqchip made
  // (before any vCPU, as KVM requires).
  static Result<KvmVm> create(const Kvm& kvm);
  // Wrap an fd that is (or, in tests, pretends to be) a VM fd; create() is the usual way.
  static KvmVm adopt(UniqueFd fd) { return KvmVm(std::move(fd)); }

  // KVM_CHECK_EXTENSION on the VM fd (what this VM offers): 0 when absent.
  int check_extension(long capability) const;
  // KVM_SET_USER_MEMORY_REGION; size 0 deletes the slot. `flags` is e.g. KVM_MEM_READONLY.
  Result<void> set_memslot(uint32_t slot, Ipa guest_address, uint64_t size, void* host,
                           uint32_t flags = 0);
  // Drive the level of an irqchip input line (IOAPIC pin / PIC irq).
  Result<void> set_irq_line(uint32_t irq, bool level);

  // Dirty logging (kvm_dirty.cc). Enable KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with
  // MANUAL_PROTECT_ENABLE, plus INITIALLY_SET when offered (slots then start all dirty and
  // unprotected: no write-protect pass over the slot when logging begins); before any slot
  // with KVM_MEM_LOG_DIRTY_PAGES exists. Returns the flags enabled; a missing capability is
  // an error naming it.
  Result<uint32_t> enable_manual_dirty_log_protect();
  // KVM_GET_DIRTY_LOG: copy the slot's bitmap (one bit per page, (pages + 63) / 64 words)
  // into `bitmap`. With manual protect it neither clears nor write-protects anything.
  Result<void> get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap);
  // KVM_CLEAR_DIRTY_LOG: clear the bits set in `bitmap` (bit 0 = `first_page`) and write-
  // protect those pages again. KVM requires `first_page` to be a multiple of 64, and
  // `num_pages` too unless the range ends at the slot's end.
  Result<void> clear_dirty_log(uint32_t slot, uint64_t first_page, uint32_t num_pages,
                               std::span<const uint64_t> bitmap);
  // Enable the per-vCPU dirty ring of `entries` (a power of two) before any vCPU exists:
  // KVM_CAP_DIRTY_LOG_RING_ACQ_REL when offered, else KVM_CAP_DIRTY_LOG_RING. A missing
  // capability, or a ring larger than KVM allows, is an error naming it.
  Result<DirtyRingSetup> enable_dirty_ring(uint32_t entries);
  // KVM_RESET_DIRTY_RINGS: re-protect the pages of every harvested ring entry and free the
  // entries. Returns how many were reset.
  Result<uint64_t> reset_dirty_rings();

  int fd() const { return fd_.get(); }

 private:
  explicit KvmVm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// KvmIoEventFd is an eventfd KVM signals, instead of exiting to the VMM, when the guest
// writes `length` bytes to `address` (MMIO), optionally only when the value equals
// `datamatch` (KVM_IOEVENTFD). Destroying it deassigns it; it must not outlive the VM.
class KvmIoEventFd {
 public:
  static Result<KvmIoEventFd> assign(const KvmVm& vm, Ipa address, uint32_t length,
                                     std::optional<uint64_t> datamatch);
  ~KvmIoEventFd();
  KvmIoEventFd(KvmIoEventFd&& other) noexcept = default;
  KvmIoEventFd& operator=(KvmIoEventFd&&) = delete;

  // The eventfd to poll.
  int fd() const { return event_.get(); }
  // Consume the pending signals; return how many writes they stand for (0: none).
  uint64_t drain() const;

 private:
  KvmIoEventFd(int vm_fd, UniqueFd event, Ipa address, uint32_t length,
               std::optional<uint64_t> datamatch)
      : vm_fd_(vm_fd),
        event_(std::move(event)),
        address_(address),
        length_(length),
        datamatch_(datamatch) {}
  int vm_fd_;
  UniqueFd event_;
  Ipa address_;
  uint32_t length_;
  std::optional<uint64_t> datamatch_;
};

// KvmIrqFd is an eventfd wired to an irqchip GSI (KVM_IRQFD): each trigger() injects one
// edge on the GSI without an ioctl of the VMM's own. Destroying it deassigns it.
class KvmIrqFd {
 public:
  static Result<KvmIrqFd> assign(const KvmVm& vm, uint32_t gsi);
  ~KvmIrqFd();
  KvmIrqFd(KvmIrqFd&& other) noexcept = default;
  KvmIrqFd& operator=(KvmIrqFd&&) = delete;

  // Signal the GSI once.
  void trigger() const;
  uint32_t gsi() const { return gsi_; }

 private:
  KvmIrqFd(int vm_fd, UniqueFd event, uint32_t gsi)
      : vm_fd_(vm_fd), event_(std::move(event)), gsi_(gsi) {}
  int vm_fd_;
  UniqueFd event_;
  uint32_t gsi_;
};

// KvmVcpu is one vCPU fd plus its mapped kvm_run area.
class KvmVcpu {
 public:
  static Result<KvmVcpu> create(const KvmVm& vm, unsigned id, size_t mmap_size);

  kvm_run* run_area() const { return reinterpret_cast<kvm_run*>(run_.data()); }
  unsigned id() const { return id_; }
  int fd() const { return fd_.get(); }
  // One KVM_RUN; returns 0 or the errno (EINTR, EAGAIN are normal).
  int run();

  Result<kvm_regs> get_regs() const;
  Result<void> set_regs(const kvm_regs& regs);
  Result<kvm_sregs> get_sregs() const;
  Result<void> set_sregs(const kvm_sregs& sregs);
  Result<void> set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
  Result<kvm_mp_state> get_mp_state() const;

 private:
  KvmVcpu(UniqueFd fd, Mapping run, unsigned id)
      : fd_(std::move(fd)), run_(std::move(run)), id_(id) {}
  UniqueFd fd_;
  Mapping run_;
  unsigned id_;
};

// KvmDirtyRing is one vCPU's dirty ring (KVM_CAP_DIRTY_LOG_RING): an array of kvm_dirty_gfn
// shared with KVM, mapped from the vCPU fd at page KVM_DIRTY_LOG_PAGE_OFFSET and unmapped
// when destroyed. The mapping keeps the vCPU's file alive by itself.
class KvmDirtyRing {
 public:
  // Map the ring of `vcpu`, enabled on its VM with `entries` entries.
  static Result<KvmDirtyRing> map(const KvmVcpu& vcpu, uint32_t entries);

  std::span<kvm_dirty_gfn> entries() const {
    return {reinterpret_cast<kvm_dirty_gfn*>(mapping_.data()),
            mapping_.size() / sizeof(kvm_dirty_gfn)};
  }
  unsigned vcpu() const { return vcpu_; }

 private:
  KvmDirtyRing(Mapping mapping, unsigned vcpu) : mapping_(std::move(mapping)), vcpu_(vcpu) {}
  Mapping mapping_;
  unsigned vcpu_;
};

}  // namespace hvmm::vmm
