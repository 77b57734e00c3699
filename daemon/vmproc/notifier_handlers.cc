// TLB and MMU-notifier requests in the VM process: shootdowns, subscriptions, age,
// invalidate.
#include <chrono>

#include "hvmm/daemon/vmproc/proto_convert.h"
#include "hvmm/daemon/vmproc/request_checks.h"
#include "hvmm/daemon/vmproc/request_handlers.h"

namespace hvmm::daemon::vmproc::handlers {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t elapsed_ns(Clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

void set_range(hvmm::v1::IpaRange& out, IpaRange range) {
  out.set_start(range.start.value());
  out.set_size(range.size);
}

// The VMM's stage-2 TLB for the range and KVM's translations of it.
Result<void> stage2_shootdown(VmContext& vm, const hvmm::v1::TlbShootdownRequest& request,
                              hvmm::v1::TlbShootdownResponse& out, Clock::time_point start) {
  auto range = check_range(request.has_range() ? &request.range() : nullptr, "range",
                           vm.ipa_space(), RangeRules{true, vm.guest_ram()});
  HVMM_TRY(range);
  auto done = vm.machine.shootdown_stage2(*range);
  HVMM_TRY(done);
  out.set_latency_ns(elapsed_ns(start));
  auto& result = *out.mutable_stage2();
  set_range(*result.mutable_range(), done->range);
  result.set_tlb_entries_dropped(done->tlb_entries_dropped);
  result.set_pages(done->pages);
  result.set_mechanism(done->mechanism);
  *result.mutable_kvm_before() = kvm_mmu_to_proto(done->kvm_before);
  *result.mutable_kvm_after() = kvm_mmu_to_proto(done->kvm_after);
  return Ok();
}

}  // namespace

// The latency is the VM process's, from taking the request to the flush being done.
Result<void> tlb_shootdown(VmContext& vm, const hvmm::v1::TlbShootdownRequest& request,
                           Response& response) {
  const auto start = Clock::now();
  auto& out = *response.mutable_tlb_shootdown();
  out.set_stage(request.stage());
  switch (request.stage()) {
    case hvmm::v1::TLB_STAGE_2:
      return stage2_shootdown(vm, request, out, start);
    case hvmm::v1::TLB_STAGE_1:
      HVMM_TRY(stage1_shootdown(vm, request.stage1(), out));
      out.set_latency_ns(elapsed_ns(start));
      return Ok();
    default:
      break;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "stage: must be TLB_STAGE_1 or TLB_STAGE_2 (got {})",
                    static_cast<int>(request.stage()));
}

// The registry's subscriptions; the watch's own one carries its event counters.
Result<void> list_subscriptions(VmContext& vm,
                                const hvmm::v1::ListSubscriptionsRequest& /*request*/,
                                Response& response) {
  auto& registry = vm.machine.physical().notifiers();
  auto& out = *response.mutable_list_subscriptions();
  const uint64_t watch_id = vm.watch.subscription_id();
  for (const stage2::SubscriptionInfo& info : registry.list()) {
    auto* entry = out.add_subscriptions();
    entry->set_id(info.id);
    entry->set_owner(info.owner);
    set_range(*entry->mutable_interval(), info.interval);
    entry->set_sequence(info.sequence);
    entry->set_invalidations_seen(info.invalidations_seen);
    if (info.id == watch_id) {
      entry->set_events_sent(vm.watch.events_sent());
      entry->set_overflows(vm.watch.overflows());
    }
  }
  out.set_invalidations(registry.stats().invalidations);
  return Ok();
}

Result<void> age(VmContext& vm, const hvmm::v1::AgeRequest& request, Response& response) {
  auto range = check_range(request.has_range() ? &request.range() : nullptr, "range",
                           vm.ipa_space(), RangeRules{true, std::nullopt});
  HVMM_TRY(range);
  auto aged = vm.machine.age(*range, request.clear());
  HVMM_TRY(aged);
  response.mutable_age()->set_young(aged->young);
  response.mutable_age()->set_young_pages(aged->young_pages);
  return Ok();
}

Result<void> invalidate(VmContext& vm, const hvmm::v1::InvalidateRequest& request,
                        Response& response) {
  auto range = check_range(request.has_range() ? &request.range() : nullptr, "range",
                           vm.ipa_space(), RangeRules{true, std::nullopt});
  HVMM_TRY(range);
  auto reason =
      change_reason_from_proto(request.reason(), stage2::ChangeReason::kShootdown, "reason");
  HVMM_TRY(reason);
  auto done = vm.machine.invalidate(*range, *reason);
  HVMM_TRY(done);
  response.mutable_invalidate()->set_subscribers(done->subscribers);
  response.mutable_invalidate()->set_latency_ns(done->latency_ns);
  return Ok();
}

}  // namespace hvmm::daemon::vmproc::handlers
