// Dirty logging on a KVM VM: the manual-protect bitmap (KVM_GET_DIRTY_LOG and
// KVM_CLEAR_DIRTY_LOG) and the per-vCPU dirty rings (their capability, mapping and reset).
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "hvmm/vmm/kvm/ioctl_error.h"
#include "hvmm/vmm/kvm/kvm.h"

namespace hvmm::vmm {
namespace {

// KVM_ENABLE_CAP of `cap` with one argument, on the VM fd `fd`.
Result<void> enable_cap(int fd, uint32_t cap, uint64_t argument, const char* name) {
  kvm_enable_cap request{};
  request.cap = cap;
  request.args[0] = argument;
  if (::ioctl(fd, KVM_ENABLE_CAP, &request) < 0) {
    Error error = ioctl_error("KVM_ENABLE_CAP");
    error.message += fmt::format(" ({}, argument {:#x})", name, argument);
    return error;
  }
  return Ok();
}

// Words of a bitmap with one bit per page of `pages`.
uint64_t bitmap_words(uint64_t pages) {
  return (pages + 63) / 64;
}

}  // namespace

// Manual protect is what makes a harvest two steps (read, then clear what was read); the
// capability's value is the set of flags this KVM accepts.
Result<uint32_t> KvmVm::enable_manual_dirty_log_protect() {
  const int offered = check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
  if (offered <= 0) {
    return make_error(ErrorCode::kUnavailable,
                      "KVM lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (needed by dirty tracking "
                      "\"log\")");
  }
  const uint32_t flags = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
                         (static_cast<uint32_t>(offered) & KVM_DIRTY_LOG_INITIALLY_SET);
  HVMM_TRY(enable_cap(fd_.get(), KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, flags,
                      "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2"));
  return flags;
}

// One slot's bitmap into the caller's buffer.
Result<void> KvmVm::get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) {
  if (bitmap.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "KVM_GET_DIRTY_LOG of slot {}: no bitmap", slot);
  }
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) {
    Error error = ioctl_error("KVM_GET_DIRTY_LOG");
    error.message += fmt::format(" (slot {})", slot);
    return error;
  }
  return Ok();
}

// KVM only reads the bitmap; the uapi struct has no const pointer.
Result<void> KvmVm::clear_dirty_log(uint32_t slot, uint64_t first_page, uint32_t num_pages,
                                    std::span<const uint64_t> bitmap) {
  if (bitmap.size() < bitmap_words(num_pages)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "KVM_CLEAR_DIRTY_LOG of slot {}: {} pages need {} bitmap words, got {}", slot,
                      num_pages, bitmap_words(num_pages), bitmap.size());
  }
  kvm_clear_dirty_log clear{};
  clear.slot = slot;
  clear.num_pages = num_pages;
  clear.first_page = first_page;
  clear.dirty_bitmap = const_cast<uint64_t*>(bitmap.data());
  if (::ioctl(fd_.get(), KVM_CLEAR_DIRTY_LOG, &clear) < 0) {
    Error error = ioctl_error("KVM_CLEAR_DIRTY_LOG");
    error.message +=
        fmt::format(" (slot {}, pages [{}, {}))", slot, first_page, first_page + num_pages);
    return error;
  }
  return Ok();
}

// The acquire/release flavour says in its name what the harvest must do (acquire the flags
// before reading an entry, release the RESET mark), which the reader does in any case; on
// x86 both are offered and mean the same. The capability's value is the largest ring size.
Result<DirtyRingSetup> KvmVm::enable_dirty_ring(uint32_t entries) {
  if (entries == 0 || (entries & (entries - 1)) != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "dirty ring of {} entries: the size must be a power of two", entries);
  }
  DirtyRingSetup setup{entries, true};
  long cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
  const char* name = "KVM_CAP_DIRTY_LOG_RING_ACQ_REL";
  int max_bytes = check_extension(cap);
  if (max_bytes <= 0) {
    setup.acquire_release = false;
    cap = KVM_CAP_DIRTY_LOG_RING;
    name = "KVM_CAP_DIRTY_LOG_RING";
    max_bytes = check_extension(cap);
  }
  if (max_bytes <= 0) {
    return make_error(ErrorCode::kUnavailable,
                      "KVM lacks KVM_CAP_DIRTY_LOG_RING_ACQ_REL and KVM_CAP_DIRTY_LOG_RING "
                      "(needed by dirty tracking \"ring\")");
  }
  const uint64_t bytes = uint64_t{entries} * sizeof(kvm_dirty_gfn);
  const auto page = static_cast<uint64_t>(::getpagesize());
  if (bytes > static_cast<uint64_t>(max_bytes) || bytes < page) {
    return make_error(ErrorCode::kOutOfRange,
                      "dirty ring of {} entries ({} bytes) is outside what {} allows ({} to {} "
                      "bytes)",
                      entries, bytes, name, page, max_bytes);
  }
  HVMM_TRY(enable_cap(fd_.get(), static_cast<uint32_t>(cap), bytes, name));
  return setup;
}

// The ioctl's value is the number of entries reset.
Result<uint64_t> KvmVm::reset_dirty_rings() {
  const int reset = ::ioctl(fd_.get(), KVM_RESET_DIRTY_RINGS, 0);
  if (reset < 0) {
    return ioctl_error("KVM_RESET_DIRTY_RINGS");
  }
  return static_cast<uint64_t>(reset);
}

// The ring sits KVM_DIRTY_LOG_PAGE_OFFSET pages into the vCPU fd's mmap space, after kvm_run.
Result<KvmDirtyRing> KvmDirtyRing::map(const KvmVcpu& vcpu, uint32_t entries) {
  const size_t bytes = size_t{entries} * sizeof(kvm_dirty_gfn);
  const auto offset = static_cast<off_t>(KVM_DIRTY_LOG_PAGE_OFFSET) * ::getpagesize();
  void* area = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.fd(), offset);
  if (area == MAP_FAILED) {
    return make_error(ErrorCode::kInternal, "mmap of vCPU {}'s dirty ring ({} entries) failed: {}",
                      vcpu.id(), entries, std::strerror(errno));
  }
  return KvmDirtyRing(Mapping(area, bytes), vcpu.id());
}

}  // namespace hvmm::vmm
