// RAII wrappers for /dev/kvm, a KVM VM and a KVM vCPU.
//
// Every ioctl failure becomes an Error naming the ioctl and the errno text, and the start-up
// checks turn the common set-up problems into messages a person can act on: /dev/kvm
// missing, permission denied, or a capability missing (by name).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
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

// KvmVm is one VM fd: memslots, the in-kernel irqchip and interrupt lines.
class KvmVm {
 public:
  // Create a VM with the TSS and identity-map pages placed and the in-kernel irqchip made
  // (before any vCPU, as KVM requires).
  static Result<KvmVm> create(const Kvm& kvm);

  // KVM_SET_USER_MEMORY_REGION; size 0 deletes the slot. `flags` is e.g. KVM_MEM_READONLY.
  Result<void> set_memslot(uint32_t slot, Ipa guest_address, uint64_t size, void* host,
                           uint32_t flags = 0);
  // Drive the level of an irqchip input line (IOAPIC pin / PIC irq).
  Result<void> set_irq_line(uint32_t irq, bool level);
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

}  // namespace hvmm::vmm
