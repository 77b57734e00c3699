// RAII wrappers for /dev/kvm, VM and vCPU fds, with actionable start-up errors.
#include "hvmm/vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "hvmm/vmm/kvm/ioctl_error.h"

namespace hvmm::vmm {
namespace {

// Where KVM's private pages live, just below the BIOS area in the 32-bit MMIO hole.
constexpr uint64_t kTssAddress = 0xfffbd000;
constexpr uint64_t kIdentityMapAddress = 0xfffbc000;

// A capability hvmm cannot run without, with the name people search for.
struct RequiredCapability {
  long id;
  const char* name;
};

constexpr RequiredCapability kRequiredCapabilities[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
};

// The kvm_cpuid2 header as the kernel lays it out. In C++ the uapi header's flexible-array
// wrapper (__DECLARE_FLEX_ARRAY) adds an empty struct of size 1, making sizeof(kvm_cpuid2)
// 12 and shifting `entries`, which changes the ioctl numbers KVM then rejects with EINVAL.
// hvmm lays the buffer out itself: this header, then the entries at offset 8.
struct CpuidHeader {
  uint32_t nent;
  uint32_t padding;
};
static_assert(sizeof(CpuidHeader) == 8);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);

// A zeroed kvm_cpuid2 buffer with room for `count` entries.
std::unique_ptr<uint64_t[]> cpuid_buffer(size_t count) {
  size_t bytes = sizeof(CpuidHeader) + count * sizeof(kvm_cpuid_entry2);
  auto buffer = std::make_unique<uint64_t[]>((bytes + 7) / 8);
  reinterpret_cast<CpuidHeader*>(buffer.get())->nent = static_cast<uint32_t>(count);
  return buffer;
}

// The entries of a cpuid_buffer().
kvm_cpuid_entry2* cpuid_entries(uint64_t* buffer) {
  return reinterpret_cast<kvm_cpuid_entry2*>(reinterpret_cast<uint8_t*>(buffer) +
                                             sizeof(CpuidHeader));
}

// Explain why /dev/kvm could not be opened in terms a person can act on.
Error open_error(const char* path, int error) {
  if (error == ENOENT) {
    return make_error(ErrorCode::kUnavailable,
                      "{} missing: KVM is not available (load kvm_intel/kvm_amd or run on a "
                      "host with virtualization enabled)",
                      path);
  }
  if (error == EACCES || error == EPERM) {
    return make_error(ErrorCode::kPermissionDenied,
                      "permission denied opening {}: add the user to group kvm (or run as "
                      "root)",
                      path);
  }
  return make_error(ErrorCode::kUnavailable, "cannot open {}: {}", path, std::strerror(error));
}

}  // namespace

// Open /dev/kvm and verify the API version and required capabilities.
Result<Kvm> Kvm::open(const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return open_error(path, errno);
  }
  Kvm kvm{UniqueFd(fd)};
  HVMM_TRY(kvm.check_capabilities());
  return kvm;
}

// Check the API version, each required capability and the kvm_run size.
Result<void> Kvm::check_capabilities() {
  int version = ::ioctl(fd_.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return make_error(ErrorCode::kUnavailable, "KVM API version {} unsupported (need {})", version,
                      KVM_API_VERSION);
  }
  for (const RequiredCapability& cap : kRequiredCapabilities) {
    if (check_extension(cap.id) <= 0) {
      return make_error(ErrorCode::kUnavailable, "KVM lacks required capability {}", cap.name);
    }
  }
  int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) {
    return ioctl_error("KVM_GET_VCPU_MMAP_SIZE");
  }
  vcpu_mmap_size_ = static_cast<size_t>(size);
  return Ok();
}

// Ask KVM about one capability.
int Kvm::check_extension(long capability) const {
  int value = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return value < 0 ? 0 : value;
}

// KVM's limit on vCPUs per VM.
unsigned Kvm::max_vcpus() const {
  int max = check_extension(KVM_CAP_MAX_VCPUS);
  if (max <= 0) {
    max = check_extension(KVM_CAP_NR_VCPUS);
  }
  return max <= 0 ? 4 : static_cast<unsigned>(max);
}

// Fetch the supported CPUID leaves, growing the buffer until KVM is satisfied.
Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
  for (uint32_t count = 256; count <= 4096; count *= 2) {  // 256: KVM_MAX_CPUID_ENTRIES
    auto buffer = cpuid_buffer(count);
    if (::ioctl(fd_.get(), kGetSupportedCpuid, buffer.get()) == 0) {
      const kvm_cpuid_entry2* entries = cpuid_entries(buffer.get());
      uint32_t found = reinterpret_cast<CpuidHeader*>(buffer.get())->nent;
      return std::vector<kvm_cpuid_entry2>(entries, entries + found);
    }
    if (errno != E2BIG) {
      return ioctl_error("KVM_GET_SUPPORTED_CPUID");
    }
  }
  return make_error(ErrorCode::kInternal, "KVM_GET_SUPPORTED_CPUID: too many leaves");
}

// Create the VM and the machine-wide state every x86 VM needs before its vCPUs.
Result<KvmVm> KvmVm::create(const Kvm& kvm) {
  int fd = ::ioctl(kvm.fd(), KVM_CREATE_VM, 0);
  if (fd < 0) {
    return ioctl_error("KVM_CREATE_VM");
  }
  KvmVm vm{UniqueFd(fd)};
  if (::ioctl(fd, KVM_SET_TSS_ADDR, kTssAddress) < 0) {
    return ioctl_error("KVM_SET_TSS_ADDR");
  }
  uint64_t identity = kIdentityMapAddress;
  if (::ioctl(fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) {
    return ioctl_error("KVM_SET_IDENTITY_MAP_ADDR");
  }
  if (::ioctl(fd, KVM_CREATE_IRQCHIP, 0) < 0) {
    return ioctl_error("KVM_CREATE_IRQCHIP");
  }
  return vm;
}

// Ask this VM about one capability.
int KvmVm::check_extension(long capability) const {
  int value = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return value < 0 ? 0 : value;
}

// Install, move or (size 0) delete one memslot.
Result<void> KvmVm::set_memslot(uint32_t slot, Ipa guest_address, uint64_t size, void* host,
                                uint32_t flags) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = guest_address.value();
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    Error error = ioctl_error("KVM_SET_USER_MEMORY_REGION");
    error.message += fmt::format(" (slot {}, [{:#x}, {:#x}))", slot, guest_address.value(),
                                 guest_address.value() + size);
    return error;
  }
  return Ok();
}

// Raise or lower an irqchip input.
Result<void> KvmVm::set_irq_line(uint32_t irq, bool level) {
  kvm_irq_level line{};
  line.irq = irq;
  line.level = level ? 1 : 0;
  if (::ioctl(fd_.get(), KVM_IRQ_LINE, &line) < 0) {
    return ioctl_error("KVM_IRQ_LINE");
  }
  return Ok();
}

namespace {

// A non-blocking close-on-exec eventfd, or an Error naming what it was for.
Result<UniqueFd> make_eventfd(const char* what) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) {
    return make_error(ErrorCode::kInternal, "eventfd for {} failed: {}", what,
                      std::strerror(errno));
  }
  return fd;
}

// The kvm_ioeventfd describing one registration (assign or, with `flags`, deassign).
kvm_ioeventfd ioeventfd_request(int fd, Ipa address, uint32_t length,
                                std::optional<uint64_t> datamatch, uint32_t flags) {
  kvm_ioeventfd request{};
  request.addr = address.value();
  request.len = length;
  request.fd = fd;
  request.flags = flags;
  if (datamatch) {
    request.datamatch = *datamatch;
    request.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
  }
  return request;
}

}  // namespace

// Make the eventfd and register it for the MMIO write.
Result<KvmIoEventFd> KvmIoEventFd::assign(const KvmVm& vm, Ipa address, uint32_t length,
                                          std::optional<uint64_t> datamatch) {
  auto event = make_eventfd("KVM_IOEVENTFD");
  HVMM_TRY(event);
  kvm_ioeventfd request = ioeventfd_request(event->get(), address, length, datamatch, 0);
  if (::ioctl(vm.fd(), KVM_IOEVENTFD, &request) < 0) {
    Error error = ioctl_error("KVM_IOEVENTFD");
    error.message += fmt::format(" (MMIO {}, {} bytes)", address, length);
    return error;
  }
  return KvmIoEventFd(vm.fd(), std::move(*event), address, length, datamatch);
}

// Deassign (a moved-from object owns no eventfd and does nothing).
KvmIoEventFd::~KvmIoEventFd() {
  if (!event_.valid()) {
    return;
  }
  kvm_ioeventfd request =
      ioeventfd_request(event_.get(), address_, length_, datamatch_, KVM_IOEVENTFD_FLAG_DEASSIGN);
  [[maybe_unused]] int rc = ::ioctl(vm_fd_, KVM_IOEVENTFD, &request);
}

// Read the eventfd counter (non-blocking: 0 when nothing is pending).
uint64_t KvmIoEventFd::drain() const {
  uint64_t count = 0;
  return ::read(event_.get(), &count, sizeof(count)) == sizeof(count) ? count : 0;
}

// Make the eventfd and route it to `gsi`.
Result<KvmIrqFd> KvmIrqFd::assign(const KvmVm& vm, uint32_t gsi) {
  auto event = make_eventfd("KVM_IRQFD");
  HVMM_TRY(event);
  kvm_irqfd request{};
  request.fd = static_cast<uint32_t>(event->get());
  request.gsi = gsi;
  if (::ioctl(vm.fd(), KVM_IRQFD, &request) < 0) {
    Error error = ioctl_error("KVM_IRQFD");
    error.message += fmt::format(" (GSI {})", gsi);
    return error;
  }
  return KvmIrqFd(vm.fd(), std::move(*event), gsi);
}

// Deassign (a moved-from object owns no eventfd and does nothing).
KvmIrqFd::~KvmIrqFd() {
  if (!event_.valid()) {
    return;
  }
  kvm_irqfd request{};
  request.fd = static_cast<uint32_t>(event_.get());
  request.gsi = gsi_;
  request.flags = KVM_IRQFD_FLAG_DEASSIGN;
  [[maybe_unused]] int rc = ::ioctl(vm_fd_, KVM_IRQFD, &request);
}

// One eventfd write is one interrupt edge.
void KvmIrqFd::trigger() const {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_.get(), &one, sizeof(one));
}

// Create vCPU `id` and map its kvm_run area.
Result<KvmVcpu> KvmVcpu::create(const KvmVm& vm, unsigned id, size_t mmap_size) {
  int fd = ::ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (fd < 0) {
    return ioctl_error("KVM_CREATE_VCPU");
  }
  UniqueFd owned(fd);
  void* area = ::mmap(nullptr, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (area == MAP_FAILED) {
    return make_error(ErrorCode::kInternal, "mmap of vCPU {} kvm_run failed: {}", id,
                      std::strerror(errno));
  }
  return KvmVcpu(std::move(owned), Mapping(area, mmap_size), id);
}

// Enter the guest once.
int KvmVcpu::run() {
  return ::ioctl(fd_.get(), KVM_RUN, 0) < 0 ? errno : 0;
}

// Read the general-purpose registers.
Result<kvm_regs> KvmVcpu::get_regs() const {
  kvm_regs regs{};
  if (::ioctl(fd_.get(), KVM_GET_REGS, &regs) < 0) {
    return ioctl_error("KVM_GET_REGS");
  }
  return regs;
}

// Write the general-purpose registers.
Result<void> KvmVcpu::set_regs(const kvm_regs& regs) {
  if (::ioctl(fd_.get(), KVM_SET_REGS, &regs) < 0) {
    return ioctl_error("KVM_SET_REGS");
  }
  return Ok();
}

// Read segment, control and descriptor-table registers.
Result<kvm_sregs> KvmVcpu::get_sregs() const {
  kvm_sregs sregs{};
  if (::ioctl(fd_.get(), KVM_GET_SREGS, &sregs) < 0) {
    return ioctl_error("KVM_GET_SREGS");
  }
  return sregs;
}

// Write segment, control and descriptor-table registers.
Result<void> KvmVcpu::set_sregs(const kvm_sregs& sregs) {
  if (::ioctl(fd_.get(), KVM_SET_SREGS, &sregs) < 0) {
    return ioctl_error("KVM_SET_SREGS");
  }
  return Ok();
}

// Install this vCPU's CPUID table.
Result<void> KvmVcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  auto buffer = cpuid_buffer(entries.size());
  std::memcpy(cpuid_entries(buffer.get()), entries.data(),
              entries.size() * sizeof(kvm_cpuid_entry2));
  if (::ioctl(fd_.get(), kSetCpuid2, buffer.get()) < 0) {
    return ioctl_error("KVM_SET_CPUID2");
  }
  return Ok();
}

// Read the multiprocessing state (runnable, waiting for SIPI, halted).
Result<kvm_mp_state> KvmVcpu::get_mp_state() const {
  kvm_mp_state state{};
  if (::ioctl(fd_.get(), KVM_GET_MP_STATE, &state) < 0) {
    return ioctl_error("KVM_GET_MP_STATE");
  }
  return state;
}

}  // namespace hvmm::vmm
