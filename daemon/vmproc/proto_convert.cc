// VMM types -> hvmm.v1 messages (proto_convert.h).
#include "hvmm/daemon/vmproc/proto_convert.h"

#include <chrono>
#include <map>
#include <utility>

namespace hvmm::daemon::vmproc {
namespace {

// The last reason stage2::ChangeReason has (its proto number is this + 1).
constexpr auto kLastReason = stage2::ChangeReason::kShootdown;

// google.protobuf has no time type in these messages: nanoseconds since the Unix epoch.
uint64_t unix_ns(std::chrono::system_clock::time_point time) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count());
}

// The stage-2 library's memory types by name (stage2_enums_test pins the correspondence).
hvmm::v1::MemoryType memory_type_to_proto(stage2::MemoryType type) {
  switch (type) {
    case stage2::MemoryType::kNormalWriteBack:
      return hvmm::v1::MEMORY_TYPE_NORMAL_WRITE_BACK;
    case stage2::MemoryType::kNormalNonCacheable:
      return hvmm::v1::MEMORY_TYPE_NORMAL_NON_CACHEABLE;
    case stage2::MemoryType::kDeviceNGnRE:
      return hvmm::v1::MEMORY_TYPE_DEVICE_NGNRE;
    case stage2::MemoryType::kDeviceNGnRnE:
      return hvmm::v1::MEMORY_TYPE_DEVICE_NGNRNE;
  }
  return hvmm::v1::MEMORY_TYPE_UNSPECIFIED;
}

}  // namespace

hvmm::v1::ChangeReason change_reason_to_proto(stage2::ChangeReason reason) {
  return static_cast<hvmm::v1::ChangeReason>(static_cast<int>(reason) + 1);
}

Result<stage2::ChangeReason> change_reason_from_proto(int value, stage2::ChangeReason fallback,
                                                      const char* field) {
  if (value == hvmm::v1::CHANGE_REASON_UNSPECIFIED) {
    return fallback;
  }
  if (value < 1 || value > static_cast<int>(kLastReason) + 1) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {} is not a ChangeReason", field, value);
  }
  return static_cast<stage2::ChangeReason>(value - 1);
}

// FaultKind is the proto's number for number; resolutions have their own mapping.
hvmm::v1::Fault fault_to_proto(const vmm::FaultRecord& record) {
  hvmm::v1::Fault fault;
  fault.set_time_unix_ns(unix_ns(record.time));
  fault.set_vm(record.vm);
  fault.set_vmid(record.vmid);
  fault.set_vcpu(record.vcpu ? *record.vcpu : kNoVcpu);
  fault.set_ipa(record.ipa.value());
  fault.set_access(record.write ? hvmm::v1::ACCESS_WRITE : hvmm::v1::ACCESS_READ);
  fault.set_size(record.size);
  fault.set_kind(static_cast<hvmm::v1::FaultKind>(record.kind_value));
  fault.set_resolution(static_cast<hvmm::v1::FaultResolution>(
      vmm::fault_resolution_proto_number(record.resolution_value)));
  fault.set_latency_ns(record.latency_ns);
  return fault;
}

// Permissions and Backing carry the library's encodings (stage2_enums_test).
hvmm::v1::Mapping mapping_to_proto(const stage2::MappedRange& range) {
  hvmm::v1::Mapping mapping;
  mapping.mutable_range()->set_start(range.range.start.value());
  mapping.mutable_range()->set_size(range.range.size);
  mapping.set_host_offset(range.output.value());
  mapping.set_permissions(static_cast<hvmm::v1::Permissions>(range.attributes.permissions));
  mapping.set_executable(range.attributes.executable);
  mapping.set_memory_type(memory_type_to_proto(range.attributes.memory_type));
  mapping.mutable_state()->set_backing(static_cast<hvmm::v1::Backing>(range.state.backing));
  mapping.mutable_state()->set_write_tracked(range.state.write_tracked);
  mapping.mutable_state()->set_pinned(range.state.pinned);
  mapping.set_young(range.young);
  mapping.set_largest_block_level(range.largest_level);
  return mapping;
}

hvmm::v1::PageStateCounts page_counts_to_proto(const vmm::PageCounts& counts) {
  hvmm::v1::PageStateCounts out;
  out.set_resident(counts[stage2::Backing::kResident]);
  out.set_ballooned(counts[stage2::Backing::kBallooned]);
  out.set_reclaimed(counts[stage2::Backing::kReclaimed]);
  out.set_reported(counts[stage2::Backing::kReported]);
  return out;
}

// Pages become bytes; guest stats keep Linux's tag names (balloon_stats.h).
hvmm::v1::BalloonStats balloon_to_proto(const std::optional<vmm::BalloonStatistics>& balloon) {
  hvmm::v1::BalloonStats out;
  if (!balloon) {
    return out;
  }
  out.set_present(true);
  out.set_target_bytes(balloon->target_pages * kPageSize);
  out.set_actual_bytes(balloon->actual_pages * kPageSize);
  out.set_inflated_pages(balloon->inflated_pages);
  out.set_deflated_pages(balloon->deflated_pages);
  out.set_reported_pages(balloon->reported_pages);
  out.set_refused_pfns(balloon->refused_pfns);
  out.set_backend_failures(balloon->backend_failures);
  for (uint16_t tag = 0; tag < vmm::kBalloonStatCount; ++tag) {
    const char* name = vmm::balloon_stat_name(tag);
    if (balloon->guest_stats[tag] && name != nullptr) {
      (*out.mutable_guest_stats())[name] = *balloon->guest_stats[tag];
    }
  }
  if (balloon->guest_stats_time) {
    out.set_guest_stats_unix_ns(unix_ns(*balloon->guest_stats_time));
  }
  return out;
}

// Refused pages are those the pool would not take (incompressible or full).
hvmm::v1::ReclaimStats reclaim_stats_to_proto(const vmm::ReclaimStats& stats,
                                              const vmm::ReclaimPolicy& policy) {
  hvmm::v1::ReclaimStats out;
  out.set_enabled(true);
  out.set_policy(vmm::format_reclaim_policy(policy));
  out.set_epochs(stats.epochs);
  out.set_pages_reclaimed(stats.reclaimed_pages);
  out.set_pages_refaulted(stats.refaults);
  out.set_pages_aborted(stats.aborted_pages);
  out.set_pages_refused(stats.incompressible_pages + stats.full_pages);
  out.set_backoffs(stats.backoffs);
  out.set_refault_p50_ns(stats.refault_latency.quantile_upper_ns(0.5));
  out.set_refault_p99_ns(stats.refault_latency.quantile_upper_ns(0.99));
  return out;
}

// The ratio is guest bytes held per byte the pool spends (0 when empty).
hvmm::v1::PoolStats pool_to_proto(const vmm::ReclaimStoreStats& pool) {
  hvmm::v1::PoolStats out;
  out.set_entries(pool.entries);
  out.set_stored_bytes(pool.entries * kPageSize);
  out.set_compressed_bytes(pool.payload_bytes);
  out.set_limit_bytes(pool.limit_bytes);
  out.set_swap_entries(pool.swapped_pages);
  out.set_swap_bytes(pool.swap_bytes);
  const uint64_t in_memory = pool.entries - pool.swapped_pages;
  if (pool.pool_bytes > 0) {
    out.set_compression_ratio(static_cast<double>(in_memory * kPageSize) /
                              static_cast<double>(pool.pool_bytes));
  }
  return out;
}

// A bin is "younger than" its upper bound; the last one (everything older) says 0.
hvmm::v1::WorkingSet working_set_to_proto(const vmm::WorkingSetEstimate& estimate,
                                          const vmm::ReclaimPolicy& policy) {
  hvmm::v1::WorkingSet out;
  const auto cold = policy.period * policy.cold_epochs;
  uint64_t young_pages = 0;
  for (size_t bin = 0; bin < vmm::WorkingSetEstimate::kBins; ++bin) {
    auto* entry = out.add_bins();
    entry->set_pages(estimate.pages[bin]);
    if (bin < estimate.bounds.size()) {
      entry->set_younger_than_ms(static_cast<uint64_t>(estimate.bounds[bin].count()));
      if (estimate.bounds[bin] <= cold) {
        young_pages += estimate.pages[bin];
      }
    }
  }
  out.set_estimate_bytes(young_pages * kPageSize);
  out.set_epoch_ms(static_cast<uint64_t>(policy.period.count()));
  return out;
}

hvmm::v1::KvmMmuStats kvm_mmu_to_proto(const vmm::KvmMmuStats& stats) {
  hvmm::v1::KvmMmuStats out;
  out.set_pages_4k(stats.pages_4k);
  out.set_pages_2m(stats.pages_2m);
  out.set_pages_1g(stats.pages_1g);
  out.set_pf_taken(stats.pf_taken);
  out.set_pf_fixed(stats.pf_fixed);
  return out;
}

hvmm::v1::Stage2TlbStats tlb_to_proto(const vmm::Stage2TlbFigures& figures) {
  hvmm::v1::Stage2TlbStats out;
  out.set_hits(figures.hits);
  out.set_misses(figures.misses);
  out.set_invalidations(figures.invalidations);
  out.set_flushes_all(figures.flushes_all);
  return out;
}

// Several VMM resolutions report as one proto resolution (EMULATED): they are summed.
void add_fault_counts(const vmm::FaultCounts& counts, hvmm::v1::MemoryStats& stats) {
  std::map<std::pair<int, int>, uint64_t> summed;
  for (size_t kind = 1; kind < vmm::kFaultKindCount; ++kind) {
    for (size_t resolution = 0; resolution < vmm::kFaultResolutionCount; ++resolution) {
      const uint64_t n = counts.faults[kind][resolution];
      if (n == 0) {
        continue;
      }
      const int proto_resolution =
          vmm::fault_resolution_proto_number(static_cast<vmm::FaultResolution>(resolution));
      summed[{static_cast<int>(kind), proto_resolution}] += n;
    }
  }
  for (const auto& [key, n] : summed) {
    auto* count = stats.add_faults();
    count->set_kind(static_cast<hvmm::v1::FaultKind>(key.first));
    count->set_resolution(static_cast<hvmm::v1::FaultResolution>(key.second));
    count->set_count(n);
  }
}

}  // namespace hvmm::daemon::vmproc
