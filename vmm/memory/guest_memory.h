// GuestMemory: the host backing of one VM's RAM, a memfd mapped shared twice.
//
// Host offsets (the stage-2 map's output addresses) index this backing. Nothing is touched
// at creation, so the host RSS grows only with what the guest and the VMM touch, and
// release() gives pages back for real: it punches a hole in the memfd, so the page leaves the
// page cache, the host RSS (RssShmem) and the memfd's allocated blocks.
//
// The memfd is mapped twice, MAP_SHARED both times, so both see the same pages:
// - the primary mapping (guest_base()) is what the guest uses: KVM memslots point at it, and
//   it is the range a userfaultfd handler registers (MISSING faults on holes);
// - the alias mapping (host_pointer()) is what every VMM-side access uses (the Translator,
//   the loader, boot data, devices) and what a fault handler fills pages through.
// Why two: a userfaultfd registration covers a virtual range, not the file. If VMM code read
// guest memory through the registered mapping, touching a hole would raise a fault and wait
// for the handler; the handler, resolving a fault, takes the map lock exclusively
// (make_resident), while the waiting VMM thread may hold that lock shared (it is inside a
// Translator access) or be the handler itself: a deadlock. Through the alias the kernel
// fills a hole itself (a zero page of the memfd), so a VMM access never waits for userfaultfd.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

// A range of host offsets (of the memfd).
using HostRange = AddressRange<HostOffset>;

// A stretch of the memfd that is all allocated or all a hole.
struct MemfdExtent {
  HostRange range;
  bool allocated = false;
};

class GuestMemory {
 public:
  // Create a memfd of `size` bytes named `name` (shown in /proc/<pid>/maps) and map it twice.
  static Result<std::unique_ptr<GuestMemory>> create(uint64_t size, const std::string& name);
  // Take ownership of a sized memfd and its two mappings (create() is the usual way).
  GuestMemory(UniqueFd fd, Mapping primary, Mapping alias)
      : fd_(std::move(fd)), primary_(std::move(primary)), alias_(std::move(alias)) {}

  uint64_t size() const { return primary_.size(); }
  int fd() const { return fd_.get(); }
  // The primary mapping: for KVM memslots and userfaultfd registration, never VMM accesses.
  uint8_t* guest_base() const { return primary_.data(); }
  // The alias mapping: the base of every VMM-side access.
  uint8_t* alias_base() const { return alias_.data(); }
  // Alias pointer for [offset, offset + length), or an error when it leaves the backing.
  Result<uint8_t*> host_pointer(HostOffset offset, uint64_t length) const;
  // Primary-mapping pointer for [offset, offset + length) (memslots), bounds-checked too.
  Result<uint8_t*> guest_pointer(HostOffset offset, uint64_t length) const;
  // Drop the contents of [offset, offset + length) with fallocate(PUNCH_HOLE | KEEP_SIZE):
  // the pages read as zero afterwards (a touch fills them again) and no longer count in the
  // host RSS. Page aligned; a hole stays a hole.
  Result<void> release(HostOffset offset, uint64_t length);
  // Zap the primary mapping's page-table entries of [offset, offset + length) with
  // madvise(MADV_DONTNEED), keeping the pages: a MAP_SHARED mapping of shmem only loses its
  // PTEs, the page cache keeps the contents, and the next touch maps them again (a minor
  // fault). The zap runs the host kernel's MMU notifiers, so KVM drops its translations of
  // the range (that is what this is for). On a range userfaultfd registers with
  // UFFD_FEATURE_EVENT_REMOVE, the call waits until the handler has read the REMOVE event.
  // Page aligned; bounds-checked. The alias mapping is left alone.
  Result<void> zap_primary(HostOffset offset, uint64_t length);
  // Write `data` at `offset` of the memfd with pwrite(): each page appears whole to a
  // concurrent fault on either mapping (the page cache page is locked while it is filled),
  // which a copy through a mapping does not promise. Page aligned; bounds-checked.
  Result<void> write_at(HostOffset offset, std::span<const uint8_t> data);
  // The allocated parts of the memfd in offset order (SEEK_DATA / SEEK_HOLE), page aligned.
  Result<std::vector<HostRange>> allocated_extents() const;
  // The largest stretch inside `bounds` around the page at `page` that is allocated, or a
  // hole, like that page (SEEK_DATA / SEEK_HOLE; `page` must lie inside `bounds`).
  Result<MemfdExtent> extent_around(HostOffset page, HostRange bounds) const;
  // Bytes the memfd has allocated (the sum of allocated_extents()).
  Result<uint64_t> allocated_bytes() const;
  // Per page of the backing, whether it is in memory according to mincore() on the primary
  // (`primary` true) or the alias mapping. For tests and diagnostics.
  Result<std::vector<bool>> mincore_pages(bool primary) const;

 private:
  Result<void> check_range(const char* what, HostOffset offset, uint64_t length) const;
  Result<uint64_t> seek(uint64_t at, bool data) const;

  UniqueFd fd_;
  Mapping primary_;
  Mapping alias_;
};

}  // namespace hvmm::vmm
