// The VM process's notifier watch (notifier_watch.h).
#include "hvmm/daemon/vmproc/notifier_watch.h"

#include <chrono>

#include "hvmm/daemon/vmproc/proto_convert.h"

namespace hvmm::daemon::vmproc {

NotifierWatch::NotifierWatch(stage2::NotifierRegistry& registry, IpaRange space, Sink sink)
    : registry_(registry), space_(space), sink_(std::move(sink)) {}

NotifierWatch::~NotifierWatch() {
  stop();
}

// Check every filter first, then swap them in and subscribe if not yet subscribed.
Result<void> NotifierWatch::forward(std::span<const IpaRange> filters) {
  if (filters.empty()) {
    stop();
    return Ok();
  }
  for (size_t i = 0; i < filters.size(); ++i) {
    const IpaRange& filter = filters[i];
    if (filter.empty() || filter.overflows() || filter.start < space_.start ||
        filter.end() > space_.end()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "filters[{}]: {} must be a non-empty range inside the IPA space {}", i,
                        filter, space_);
    }
  }
  std::lock_guard control(control_);
  {
    std::lock_guard lock(mutex_);
    filters_.assign(filters.begin(), filters.end());
  }
  if (!subscription_.subscribed()) {
    auto subscribed = registry_.subscribe(space_, this, "watch");
    HVMM_TRY(subscribed);
    subscription_ = std::move(*subscribed);
    std::lock_guard lock(mutex_);
    subscription_id_ = subscription_.id();
  }
  return Ok();
}

Result<void> NotifierWatch::forward_all() {
  const IpaRange all[] = {space_};
  return forward(all);
}

// Unsubscribing waits for callbacks running on other threads, so it is done outside mutex_.
void NotifierWatch::stop() {
  std::lock_guard control(control_);
  subscription_.reset();
  std::lock_guard lock(mutex_);
  filters_.clear();
  subscription_id_ = 0;
}

bool NotifierWatch::forwarding() const {
  std::lock_guard lock(mutex_);
  return subscription_id_ != 0;
}

uint64_t NotifierWatch::subscription_id() const {
  std::lock_guard lock(mutex_);
  return subscription_id_;
}

uint64_t NotifierWatch::events_sent() const {
  std::lock_guard lock(mutex_);
  return sent_;
}

uint64_t NotifierWatch::overflows() const {
  std::lock_guard lock(mutex_);
  return overflows_;
}

// Never refuses: the watch only reports.
bool NotifierWatch::invalidate_range_start(const stage2::Change& change) {
  emit(change, hvmm::v1::NOTIFIER_PHASE_START);
  return true;
}

void NotifierWatch::invalidate_range_end(const stage2::Change& change) {
  emit(change, hvmm::v1::NOTIFIER_PHASE_END);
}

bool NotifierWatch::wanted(IpaRange range) const {
  for (const IpaRange& filter : filters_) {
    if (filter.overlaps(range)) {
      return true;
    }
  }
  return false;
}

// Build the event outside the lock; count what the sink took or refused.
void NotifierWatch::emit(const stage2::Change& change, hvmm::v1::NotifierPhase phase) {
  {
    std::lock_guard lock(mutex_);
    if (!wanted(change.range)) {
      return;
    }
  }
  hvmm::v1::NotifierEvent event;
  event.set_time_unix_ns(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()));
  event.set_sequence(registry_.invalidation_number(change));
  event.mutable_range()->set_start(change.range.start.value());
  event.mutable_range()->set_size(change.range.size);
  event.set_reason(change_reason_to_proto(change.reason));
  event.set_phase(phase);
  event.set_blockable(change.blockable);
  const bool queued = sink_(std::move(event));
  std::lock_guard lock(mutex_);
  ++(queued ? sent_ : overflows_);
}

}  // namespace hvmm::daemon::vmproc
