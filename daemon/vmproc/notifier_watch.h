// NotifierWatch: the VM process's MMU-notifier subscriber for the daemon's WatchNotifier
// clients.
//
// While forwarding is on it holds one subscription over the whole IPA space (owner "watch")
// and turns each invalidation that overlaps the daemon's filters (their union) into two
// hvmm.v1.NotifierEvents, START and END, carrying the invalidation's number in the registry
// (the same for both phases), its range, reason and blockable flag. The callbacks run on the
// thread changing the map, often with the map lock held: they never block and never refuse
// a change; an event the outbound queue has no room for is dropped and counted there
// (OutboundQueue), and here as an overflow. Forwarding with no filters unsubscribes, so a VM
// nobody watches pays nothing. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/stage2/mmu_notifier.h"
#include "hvmm/v1/notifier.pb.h"

namespace hvmm::daemon::vmproc {

class NotifierWatch final : public stage2::IntervalOps {
 public:
  // Takes one event and says whether it was queued; must not block.
  using Sink = std::function<bool(hvmm::v1::NotifierEvent)>;

  // Watch `registry` over `space` (the VM's IPA space), giving events to `sink`.
  NotifierWatch(stage2::NotifierRegistry& registry, IpaRange space, Sink sink);
  // Unsubscribes.
  ~NotifierWatch() override;
  NotifierWatch(const NotifierWatch&) = delete;
  NotifierWatch& operator=(const NotifierWatch&) = delete;

  // Forward events overlapping `filters` from now on (each inside the space, not empty);
  // none: stop forwarding. Errors name the filter ("filters[1]: ...") and change nothing.
  Result<void> forward(std::span<const IpaRange> filters);
  // Forward every event.
  Result<void> forward_all();
  // Stop forwarding (unsubscribe); idempotent.
  void stop();

  bool forwarding() const;
  // The subscription's id in the registry while forwarding (0 otherwise).
  uint64_t subscription_id() const;
  uint64_t events_sent() const;
  uint64_t overflows() const;

  bool invalidate_range_start(const stage2::Change& change) override;
  void invalidate_range_end(const stage2::Change& change) override;

 private:
  void emit(const stage2::Change& change, hvmm::v1::NotifierPhase phase);
  bool wanted(IpaRange range) const;

  stage2::NotifierRegistry& registry_;
  const IpaRange space_;
  const Sink sink_;
  // Serializes forward()/stop() (subscribing may wait for callbacks of this watch).
  std::mutex control_;
  mutable std::mutex mutex_;  // the filters and counters; callbacks hold it only briefly
  std::vector<IpaRange> filters_;
  uint64_t sent_ = 0;
  uint64_t overflows_ = 0;
  stage2::IntervalSubscription subscription_;  // under control_
  uint64_t subscription_id_ = 0;               // under mutex_
};

}  // namespace hvmm::daemon::vmproc
