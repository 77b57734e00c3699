// GuestPhysical's VMM accesses (GuestAccess): the Translator, with reclaimed pages restored
// first and every access registered with the reclaim window.
//
// Why every access is registered, reads too: a VMM copy goes through the alias mapping,
// which no write protection covers, and a pointer the Translator returned before a commit
// punched the page could still be used after it (a write would be lost, a read would see
// zeros and allocate the page again). A window therefore never commits a page an access is
// over; a write also marks the pages of an open window written before it copies anything.
// A restore happens under the exclusive map lock and writes the memfd with pwrite(), so
// neither a Translator access nor a guest fault sees a page before its contents are back.
#include <mutex>
#include <vector>

#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;

// The whole pages [ipa, ipa + size) touches (empty for an empty or overflowing access: the
// Translator reports those).
IpaRange pages_of(Ipa ipa, uint64_t size) {
  const IpaRange range{ipa, size};
  if (size == 0 || range.overflows() || range.end().value() > ~uint64_t{0} - kPageSize)
    return IpaRange{ipa, 0};
  const Ipa start = ipa.align_down(kPageSize);
  return IpaRange{start, range.end().align_up(kPageSize) - start};
}

}  // namespace

// Copy out through the translator (TLB, then map walk; every page checked first).
Result<void> GuestPhysical::read(Ipa ipa, std::span<uint8_t> out) {
  return vmm_access(ipa, out.size(), /*write=*/false,
                    [&] { return translator_->read(ipa, std::as_writable_bytes(out)); });
}

// Copy in through the translator.
Result<void> GuestPhysical::write(Ipa ipa, std::span<const uint8_t> data) {
  return vmm_access(ipa, data.size(), /*write=*/true,
                    [&] { return translator_->write(ipa, std::as_bytes(data)); });
}

// The Translator checks every page before copying, so a failed copy copied nothing: when it
// refused a page that is not resident (kFailedPrecondition), restore what is reclaimed and
// copy again. Again even when the restore found nothing reclaimed: a guest refault may have
// brought the page back between the refusal and the restore. The access stays registered
// throughout, so no window can take a restored page back before the copy.
template <typename Copy>
Result<void> GuestPhysical::vmm_access(Ipa ipa, uint64_t size, bool write, Copy&& copy) {
  const IpaRange pages = pages_of(ipa, size);
  ReclaimWindowAccess tracked(window_, pages, write);
  Result<void> done = copy();
  uint64_t restored = 0;
  if (!done.ok() && done.error().code == ErrorCode::kFailedPrecondition && !pages.empty() &&
      store_.load(std::memory_order_acquire) != nullptr) {
    auto restoring = restore_reclaimed(pages);
    if (!restoring)
      return restoring.error();
    restored = *restoring;
    done = copy();
  }
  ReclaimEvents* events = events_.load(std::memory_order_acquire);
  if (done.ok() && events != nullptr && (write || restored > 0))
    events->vmm_accessed(pages, write, restored);
  return done;
}

// Every reclaimed host run of the range, each restored whole or not at all.
Result<uint64_t> GuestPhysical::restore_reclaimed(IpaRange range) {
  std::unique_lock guard(lock_);
  std::vector<std::pair<IpaRange, HostOffset>> reclaimed;
  for_each_host_run(
      *map_, range,
      [](stage2::Descriptor leaf) { return leaf.state().backing == Backing::kReclaimed; },
      [&](IpaRange part, HostOffset output) { reclaimed.emplace_back(part, output); });
  uint64_t restored = 0;
  for (const auto& [part, output] : reclaimed) {
    HVMM_TRY(restore_run(guard, part, output));
    restored += part.size / kPageSize;
  }
  return restored;
}

// Load every page first (an error changes nothing), then make the run resident, write it
// into the memfd and erase the entries. A failed write puts the run back to reclaimed (the
// entries are still there).
Result<void> GuestPhysical::restore_run(const std::unique_lock<std::shared_mutex>& guard,
                                        IpaRange run, HostOffset output) {
  ReclaimStore* store = store_.load(std::memory_order_acquire);
  std::vector<uint8_t> contents(run.size);
  for (uint64_t at = 0; at < run.size; at += kPageSize) {
    std::span<uint8_t, kPageSize> page(contents.data() + at, kPageSize);
    if (Result<void> loaded = store->load(run.start + at, page); !loaded.ok()) {
      return make_error(loaded.error().code, "cannot restore reclaimed page at IPA {:#x}: {}",
                        (run.start + at).value(), loaded.error().message);
    }
  }
  const ChangeOptions resident{stage2::ChangeReason::kFault, /*blockable=*/true,
                               /*restores_contents=*/true};
  HVMM_TRY(change_backing(guard, run, Backing::kResident, resident));
  if (Result<void> written = memory_->write_at(output, contents); !written.ok()) {
    [[maybe_unused]] auto undone =
        change_backing(guard, run, Backing::kReclaimed,
                       ChangeOptions{stage2::ChangeReason::kReclaim, /*blockable=*/true, false});
    return make_error(written.error().code, "cannot restore reclaimed {}: {}", run,
                      written.error().message);
  }
  erase_entries(guard, run);
  return Ok();
}

}  // namespace hvmm::vmm
