// Translator: TLB miss handling and the byte-copy helpers (the hit path is inline).
#include "hvmm/stage2/translator.h"

#include <cstring>
#include <mutex>
#include <utility>

namespace hvmm::stage2 {

namespace {

// The rights a mapping grants to VMM accesses.
Access granted_by(const Attributes& attributes) {
  Access granted = Access::kNone;
  if (allows_read(attributes.permissions))
    granted = granted | Access::kRead;
  if (allows_write(attributes.permissions))
    granted = granted | Access::kWrite;
  if (attributes.executable)
    granted = granted | Access::kExecute;
  return granted;
}

// Drop the write right, so every write to a write-tracked page misses and walks.
Access without_write(Access access) {
  return static_cast<Access>(static_cast<uint8_t>(access) & ~static_cast<uint8_t>(Access::kWrite));
}

}  // namespace

// Subscribe to the whole IPA space: any invalidation makes in-flight walks uncacheable.
Result<Translator> Translator::create(Stage2Map& map, std::shared_mutex& map_lock, Stage2Tlb& tlb,
                                      NotifierRegistry& notifiers, uint16_t vmid,
                                      HostBacking backing) {
  if (backing.base == nullptr ||
      !is_aligned(reinterpret_cast<uintptr_t>(backing.base), kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the host backing of VMID {} must be a non-null 4 KiB-aligned mapping", vmid);
  }
  auto subscription =
      notifiers.subscribe(IpaRange{Ipa(0), map.space().size()}, nullptr, "translator");
  if (!subscription.ok())
    return subscription.error();
  return Translator(map, map_lock, tlb, std::move(subscription).value(), vmid, backing);
}

// Store the collaborators; create() has validated them.
Translator::Translator(Stage2Map& map, std::shared_mutex& map_lock, Stage2Tlb& tlb,
                       IntervalSubscription subscription, uint16_t vmid, HostBacking backing)
    : map_(&map),
      map_lock_(&map_lock),
      tlb_(&tlb),
      subscription_(std::move(subscription)),
      vmid_(vmid),
      backing_(backing) {}

// Moving keeps the notifier subscription (it is a move-only handle).
Translator::Translator(Translator&& other) noexcept
    : map_(other.map_),
      map_lock_(other.map_lock_),
      tlb_(other.tlb_),
      subscription_(std::move(other.subscription_)),
      vmid_(other.vmid()),
      backing_(other.backing_),
      check_fills_(other.check_fills_),
      after_walk_hook_(std::move(other.after_walk_hook_)) {}

// read_begin before the walk, read_retry with the entry locked: a refused fill means an
// invalidation started after read_begin, so the walk is returned (it was true under the
// lock) but not cached, exactly as KVM drops a fault that raced with mmu_invalidate_seq.
Result<std::byte*> Translator::translate_slow(Ipa ipa, Access access) {
  const uint64_t sequence = subscription_.read_begin();
  auto walked = walk(ipa, access);
  if (!walked.ok())
    return walked.error();
  if (after_walk_hook_)
    after_walk_hook_();
  tlb_->fill(vmid(), ipa, walked->host_page, walked->cacheable,
             [&] { return !check_fills_ || !subscription_.read_retry(sequence); });
  return walked->host_page + ipa.page_offset();
}

// Walk the map under its shared lock, check residency, permissions and bounds, and set the
// access flag like a hardware walk would (so aging sees VMM accesses; mkold invalidates the
// TLB, so the next access after aging walks again).
Result<Translator::Walked> Translator::walk(Ipa ipa, Access access) const {
  std::shared_lock lock(*map_lock_);
  const auto translation = map_->translate(ipa);
  if (!translation) {
    return make_error(ErrorCode::kNotFound, "cannot {} IPA {} (VMID {}): not mapped",
                      access_name(access), ipa, vmid());
  }
  if (translation->state.backing != Backing::kResident) {
    return make_error(ErrorCode::kFailedPrecondition, "cannot {} IPA {} (VMID {}): page is {}",
                      access_name(access), ipa, vmid(), backing_name(translation->state.backing));
  }
  const Access granted = granted_by(translation->attributes);
  if (!access_allows(granted, access)) {
    return make_error(
        ErrorCode::kPermissionDenied, "cannot {} IPA {} (VMID {}): mapped {}", access_name(access),
        ipa, vmid(),
        permissions_name(translation->attributes.permissions, translation->attributes.executable));
  }
  if (!translation->young)
    map_->mark_young(ipa);  // the access-flag fault; safe under the shared lock
  const HostOffset page = translation->output.align_down(kPageSize);
  if (page.value() >= backing_.size || backing_.size - page.value() < kPageSize) {
    return make_error(ErrorCode::kOutOfRange,
                      "cannot {} IPA {} (VMID {}): host offset {} is outside the {:#x}-byte "
                      "backing",
                      access_name(access), ipa, vmid(), translation->output, backing_.size);
  }
  const Access cacheable = translation->state.write_tracked ? without_write(granted) : granted;
  return Walked{backing_.base + page.value(), cacheable};
}

// Translate every page first so a failure copies nothing, then copy page by page.
template <typename Copy>
Result<void> Translator::copy(const char* verb, Ipa ipa, size_t size, Access access,
                              Copy&& copy_chunk) {
  const IpaRange range{ipa, size};
  if (range.overflows()) {
    return make_error(ErrorCode::kInvalidArgument, "cannot {} {} bytes at IPA {}: overflows", verb,
                      size, ipa);
  }
  for (uint64_t done = 0; done < size;) {
    const uint64_t chunk = std::min<uint64_t>(size - done, kPageSize - (ipa + done).page_offset());
    if (auto checked = translate(ipa + done, access); !checked.ok()) {
      return make_error(checked.error().code, "cannot {} {}: {}", verb, range,
                        checked.error().message);
    }
    done += chunk;
  }
  for (uint64_t done = 0; done < size;) {
    const uint64_t chunk = std::min<uint64_t>(size - done, kPageSize - (ipa + done).page_offset());
    auto host = translate(ipa + done, access);
    if (!host.ok()) {
      return make_error(host.error().code, "{} of {} cut short: {}", verb, range,
                        host.error().message);
    }
    copy_chunk(*host, done, chunk);
    done += chunk;
  }
  return Ok();
}

// Guest → VMM copy, page by page.
Result<void> Translator::read(Ipa ipa, std::span<std::byte> out) {
  return copy("read", ipa, out.size(), Access::kRead,
              [&](std::byte* host, uint64_t done, uint64_t chunk) {
                std::memcpy(out.data() + done, host, chunk);
              });
}

// VMM → guest copy, page by page (requires write permission on every page).
Result<void> Translator::write(Ipa ipa, std::span<const std::byte> in) {
  return copy("write", ipa, in.size(), Access::kWrite,
              [&](std::byte* host, uint64_t done, uint64_t chunk) {
                std::memcpy(host, in.data() + done, chunk);
              });
}

}  // namespace hvmm::stage2
