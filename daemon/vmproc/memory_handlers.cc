// MemoryService requests in the VM process: stats, balloon, reclaim, stage-2 dump, dirty log.
#include <algorithm>
#include <chrono>
#include <thread>

#include "hvmm/daemon/vmproc/proto_convert.h"
#include "hvmm/daemon/vmproc/request_checks.h"
#include "hvmm/daemon/vmproc/request_handlers.h"
#include "hvmm/vmm/devices/virtio/fixed_mmio.h"
#include "hvmm/vmm/host/process_memory.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"

namespace hvmm::daemon::vmproc::handlers {
namespace {

using Clock = std::chrono::steady_clock;

// DumpStage2's page_size: 0 means this, more than kMaxDumpPage is refused.
constexpr uint32_t kDefaultDumpPage = 1000;
constexpr uint32_t kMaxDumpPage = 10000;
// ReclaimRequest.epochs bounds.
constexpr uint32_t kMaxReclaimEpochs = 100;
// A balloon wait sleeps in slices this long, so it notices the VM's end.
constexpr auto kBalloonWaitSlice = std::chrono::milliseconds(100);

uint64_t now_unix_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// The reclaim figures of a VM with reclaim; the engine's policy is copied first.
void add_reclaim(VmContext& vm, hvmm::v1::MemoryStats& stats) {
  vmm::ReclaimEngine* engine = vm.machine.reclaim_engine();
  auto figures = vm.machine.reclaim_figures();
  if (engine == nullptr || !figures) {
    return;  // enabled = false, the rest zero
  }
  const vmm::ReclaimPolicy policy = engine->policy();
  *stats.mutable_reclaim() = reclaim_stats_to_proto(figures->stats, policy);
  *stats.mutable_pool() = pool_to_proto(figures->pool);
  *stats.mutable_working_set() = working_set_to_proto(figures->working_set, policy);
}

// The host's view of this process; left zero (never an error) when /proc cannot be read.
void add_host(VmContext& vm, hvmm::v1::MemoryStats& stats) {
  if (auto memory = vmm::read_process_memory(); memory) {
    stats.mutable_host()->set_rss_bytes(memory->rss);
    stats.mutable_host()->set_rss_shmem_bytes(memory->rss_shmem);
  }
  if (auto allocated = vm.machine.physical().allocated_bytes(); allocated) {
    stats.mutable_host()->set_memfd_allocated_bytes(*allocated);
  }
}

// Wait for the balloon in slices until `deadline`; false when it was not reached.
Result<bool> wait_for_balloon(VmContext& vm, Clock::time_point deadline) {
  while (true) {
    const auto slice = std::min(deadline, Clock::now() + kBalloonWaitSlice);
    if (vm.machine.wait_for_balloon(slice)) {
      return true;
    }
    if (vm.ended.load()) {
      return make_error(ErrorCode::kUnavailable,
                        "target_bytes: the VM ended before the balloon reached its target");
    }
    if (Clock::now() >= deadline) {
      return false;
    }
  }
}

}  // namespace

Result<void> get_memory_stats(VmContext& vm, const hvmm::v1::GetMemoryStatsRequest& /*request*/,
                              Response& response) {
  auto& stats = *response.mutable_get_memory_stats()->mutable_stats();
  stats.set_name(vm.name);
  stats.set_vmid(vm.vmid);
  stats.set_memory_bytes(vm.machine.physical().memory_size());
  add_host(vm, stats);
  *stats.mutable_pages() = page_counts_to_proto(vm.machine.physical().page_counts());
  *stats.mutable_balloon() = balloon_to_proto(vm.machine.balloon_statistics());
  add_reclaim(vm, stats);
  *stats.mutable_kvm() = kvm_mmu_to_proto(vm.machine.kvm_mmu_stats());
  *stats.mutable_tlb() = tlb_to_proto(vm.machine.stage2_tlb_figures());
  add_fault_counts(vm.machine.fault_counts(), stats);
  stats.set_time_unix_ns(now_unix_ns());
  return Ok();
}

// Set the target; with wait_ms, wait for the driver (DEADLINE_EXCEEDED when it falls short,
// the target staying set).
Result<void> set_balloon_target(VmContext& vm, const hvmm::v1::SetBalloonTargetRequest& request,
                                Response& response) {
  if (!vm.machine.balloon_statistics()) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "the VM has no balloon (spec.balloon.disabled)");
  }
  const uint64_t memory = vm.machine.physical().memory_size();
  if (request.target_bytes() >= memory) {
    return make_error(ErrorCode::kInvalidArgument,
                      "target_bytes: {} is not below the VM's {} bytes of RAM",
                      request.target_bytes(), memory);
  }
  if (auto set = vm.machine.set_balloon_target(request.target_bytes()); !set) {
    return in_field("target_bytes", set.error());
  }
  if (request.wait_ms() != 0) {
    auto reached =
        wait_for_balloon(vm, Clock::now() + std::chrono::milliseconds(request.wait_ms()));
    HVMM_TRY(reached);
    if (!*reached) {
      const auto balloon = balloon_to_proto(vm.machine.balloon_statistics());
      fail(response, kRpcDeadlineExceeded,
           fmt::format("target_bytes: the balloon holds {} of {} bytes after wait_ms {} (the "
                       "target stays set)",
                       balloon.actual_bytes(), balloon.target_bytes(), request.wait_ms()));
      return Ok();
    }
  }
  *response.mutable_set_balloon_target()->mutable_balloon() =
      balloon_to_proto(vm.machine.balloon_statistics());
  return Ok();
}

// Epochs now, or a new policy (reported as the figures before and after the change).
Result<void> reclaim(VmContext& vm, const hvmm::v1::ReclaimRequest& request, Response& response) {
  vmm::ReclaimEngine* engine = vm.machine.reclaim_engine();
  if (engine == nullptr) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "the VM has no reclaim (spec.reclaim_policy is unset)");
  }
  auto& out = *response.mutable_reclaim();
  switch (request.action_case()) {
    case hvmm::v1::ReclaimRequest::kEpochs: {
      if (request.epochs() < 1 || request.epochs() > kMaxReclaimEpochs) {
        return make_error(ErrorCode::kInvalidArgument, "epochs: must be 1..{} (got {})",
                          kMaxReclaimEpochs, request.epochs());
      }
      auto run = vm.machine.reclaim_now(request.epochs());
      HVMM_TRY(run);
      const vmm::ReclaimPolicy policy = engine->policy();
      *out.mutable_before() = reclaim_stats_to_proto(run->before, policy);
      *out.mutable_after() = reclaim_stats_to_proto(run->after, policy);
      out.set_duration_ns(run->duration_ns);
      return Ok();
    }
    case hvmm::v1::ReclaimRequest::kSetPolicy: {
      auto policy = vmm::parse_reclaim_policy(request.set_policy());
      if (!policy) {
        return in_field("set_policy", policy.error());
      }
      const auto start = Clock::now();
      auto before = vm.machine.reclaim_figures();
      const vmm::ReclaimPolicy old_policy = engine->policy();
      HVMM_TRY(vm.machine.set_reclaim_policy(*policy));
      auto after = vm.machine.reclaim_figures();
      if (before && after) {
        *out.mutable_before() = reclaim_stats_to_proto(before->stats, old_policy);
        *out.mutable_after() = reclaim_stats_to_proto(after->stats, *policy);
      }
      out.set_duration_ns(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
      return Ok();
    }
    case hvmm::v1::ReclaimRequest::ACTION_NOT_SET:
      break;
  }
  return make_error(ErrorCode::kInvalidArgument, "action: set epochs or set_policy");
}

namespace {

// The machine's MMIO inside `range`, in IPA order: KVM's fixed devices and the virtio-mmio
// windows (named as their transports log: "virtio-balloon@0xd0000000").
void add_device_regions(VmContext& vm, IpaRange range, hvmm::v1::Stage2Dump& dump) {
  std::vector<std::pair<IpaRange, std::string>> regions;
  for (const vmm::virtio::FixedMmio& fixed : vmm::virtio::kFixedMmio) {
    regions.emplace_back(fixed.range, fixed.name);
  }
  vmm::MachineDevices& devices = vm.machine.devices();
  for (size_t i = 0; i < devices.virtio_count(); ++i) {
    regions.emplace_back(devices.slots()[i].window, devices.transport(i).name());
  }
  std::sort(regions.begin(), regions.end(),
            [](const auto& a, const auto& b) { return a.first.start < b.first.start; });
  for (const auto& [region, name] : regions) {
    if (region.overlaps(range)) {
      auto* device = dump.add_devices();
      device->mutable_range()->set_start(region.start.value());
      device->mutable_range()->set_size(region.size);
      device->set_name(name);
    }
  }
}

// Guest RAM in bytes: every RAM region, whatever its pages' state.
uint64_t guest_ram_bytes(VmContext& vm) {
  uint64_t bytes = 0;
  for (const vmm::RamRegion& region : vm.machine.physical().ram()) {
    bytes += region.range.size;
  }
  return bytes;
}

}  // namespace

// One page of runs from the token's IPA (or the range's start); the token of the next page
// when runs remain.
Result<void> dump_stage2(VmContext& vm, const hvmm::v1::DumpStage2Request& request,
                         Response& response) {
  auto range = check_range(request.has_range() ? &request.range() : nullptr, "range",
                           vm.ipa_space(), RangeRules{true, vm.ipa_space()});
  HVMM_TRY(range);
  if (request.page_size() > kMaxDumpPage) {
    return make_error(ErrorCode::kInvalidArgument, "page_size: must be at most {} (got {})",
                      kMaxDumpPage, request.page_size());
  }
  const size_t page_size = request.page_size() == 0 ? kDefaultDumpPage : request.page_size();
  Ipa from = range->start;
  if (!request.page_token().empty()) {
    auto decoded = vm.tokens.decode(request.page_token(), *range);
    HVMM_TRY(decoded);
    from = *decoded;
  }
  const auto runs = vm.machine.physical().mapped_ranges(IpaRange{from, range->end() - from});
  auto& out = *response.mutable_dump_stage2();
  out.mutable_dump()->set_ipa_bits(vm.machine.physical().map().space().ipa_bits());
  out.mutable_dump()->set_vmid(vm.vmid);
  out.mutable_dump()->set_memory_bytes(guest_ram_bytes(vm));
  if (request.page_token().empty()) {
    add_device_regions(vm, *range, *out.mutable_dump());
  }
  const size_t count = std::min(page_size, runs.size());
  for (size_t i = 0; i < count; ++i) {
    *out.mutable_dump()->add_mappings() = mapping_to_proto(runs[i]);
  }
  if (count < runs.size()) {
    out.set_next_page_token(vm.tokens.encode(*range, runs[count - 1].range.end()));
  }
  return Ok();
}

Result<void> get_dirty_log(VmContext& vm, const hvmm::v1::GetDirtyLogRequest& request,
                           Response& response) {
  auto range = check_range(request.has_range() ? &request.range() : nullptr, "range",
                           vm.ipa_space(), RangeRules{true, vm.guest_ram()});
  HVMM_TRY(range);
  auto snapshot = vm.machine.take_dirty_log(*range);
  HVMM_TRY(snapshot);
  auto& out = *response.mutable_get_dirty_log();
  for (const IpaRange& dirty : snapshot->dirty) {
    auto* entry = out.add_dirty();
    entry->set_start(dirty.start.value());
    entry->set_size(dirty.size);
  }
  out.set_dirty_pages(snapshot->dirty_pages);
  out.set_interval_ns(snapshot->interval_ns);
  return Ok();
}

}  // namespace hvmm::daemon::vmproc::handlers
