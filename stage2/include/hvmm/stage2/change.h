// Change: one break-before-make update of the stage-2 map, and the hooks that see it.
//
// Every change to the map runs in this order (DESIGN.md, stage2/):
//   1. hooks.range_start(change)        MMU notifier invalidate_range_start; any hook may
//                                       refuse here, and then nothing is committed
//   2. descriptors are updated          (cannot fail: tables were prepared beforehand)
//   3. hooks.range_updated(change)      stage-2 TLB invalidation for (VMID, range) and
//                                       realization on the backing (fallocate punch-hole)
//   4. hooks.range_end(change)          MMU notifier invalidate_range_end
// When a hook refuses in step 1, the hooks that had already started get range_end (without
// range_updated: the change was abandoned, as Linux ends the notifiers that started before a
// non-blockable start failed), the later ones are not called, the descriptors stay as they
// were, and the operation returns the refusal's Error (kUnavailable: retry later).
// Hooks are mechanism-free policy: the map does not know who listens.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::stage2 {

// Why the map changed; carried through to notifiers, logs and gRPC watchers.
enum class ChangeReason : uint8_t {
  kMap,
  kUnmap,
  kProtect,
  kPageState,
  kBalloon,
  kReclaim,
  kMemslot,
  kSnapshot,
  kAging,
  kFreePageReport,  // the guest reported free pages (virtio-balloon free page reporting)
  kFault,           // a guest touch of a non-resident page made it resident again
  kShootdown,       // a stage-2 TLB shootdown or an invalidation asked for from outside
};

// Return the lower-case name of a reason ("balloon", "free-page-report").
const char* change_reason_name(ChangeReason reason);

// The kind of operation, so a hook can tell a permission change from a removal. kInvalidate
// changes nothing in the map: an invalidation asked for from outside (a control), for
// subscribers to drop what they cache of the range; it reaches the notifiers only.
enum class ChangeKind : uint8_t { kMap, kUnmap, kProtect, kPageState, kAge, kInvalidate };

// Change describes one update: the IPA range it covers, what and why.
struct Change {
  IpaRange range;
  ChangeKind kind;
  ChangeReason reason;
  // False when the caller cannot sleep (like mmu_notifier_range_blockable()): a hook that
  // would need to block must not, and refuses the change instead (it is then retried).
  bool blockable = true;
};

// ChangeHooks observe break-before-make. Default implementations do nothing and accept.
class ChangeHooks {
 public:
  virtual ~ChangeHooks() = default;
  // The range is about to change. An Error refuses the change (see the header comment):
  // only a non-blockable change should be refused, with ErrorCode::kUnavailable.
  virtual Result<void> range_start(const Change& /*change*/) { return Ok(); }
  // The descriptors of the range have changed (only after every range_start accepted).
  virtual void range_updated(const Change& /*change*/) {}
  // The change is over: committed, or abandoned when range_updated was not called.
  virtual void range_end(const Change& /*change*/) {}
};

}  // namespace hvmm::stage2
