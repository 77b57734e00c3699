// Change: one break-before-make update of the stage-2 map, and the hooks that see it.
//
// Every change to the map runs in this order (DESIGN.md, stage2/):
//   1. hooks.range_start(change)        MMU notifier invalidate_range_start
//   2. descriptors are updated          (cannot fail: tables were prepared beforehand)
//   3. hooks.range_updated(change)      stage-2 TLB invalidation for (VMID, range) and
//                                       realization on KVM (memslot, madvise, punch-hole)
//   4. hooks.range_end(change)          MMU notifier invalidate_range_end
// Hooks are mechanism-free policy: the map does not know who listens.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"

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
};

// Return the lower-case name of a reason ("balloon").
const char* change_reason_name(ChangeReason reason);

// The kind of operation, so a hook can tell a permission change from a removal.
enum class ChangeKind : uint8_t { kMap, kUnmap, kProtect, kPageState, kAge };

// Change describes one update: the IPA range it covers, what and why.
struct Change {
  IpaRange range;
  ChangeKind kind;
  ChangeReason reason;
  // False when the caller cannot sleep (like mmu_notifier_range_blockable()): a hook that
  // would need to block must not, and reports the change as needing a retry instead.
  bool blockable = true;
};

// ChangeHooks observe break-before-make. Default implementations do nothing.
class ChangeHooks {
 public:
  virtual ~ChangeHooks() = default;
  virtual void range_start(const Change& /*change*/) {}
  virtual void range_updated(const Change& /*change*/) {}
  virtual void range_end(const Change& /*change*/) {}
};

}  // namespace hvmm::stage2
