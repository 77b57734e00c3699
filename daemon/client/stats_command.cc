// stats NAME: a VM's memory figures (GetMemoryStats) in human units, one section per source.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <map>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/text.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;
using args::human_size;

constexpr uint64_t kPage = 4096;

// "1234 (4.82 MiB)": pages with what they hold.
std::string pages(uint64_t count) {
  return fmt::format("{} ({})", count, human_size(count * kPage));
}

void print_host_and_pages(std::ostream& out, const v1::MemoryStats& stats) {
  out << fmt::format("{} (vmid {}): {} of guest RAM\n", stats.name(), stats.vmid(),
                     human_size(stats.memory_bytes()));
  out << fmt::format("host: rss {}, guest RAM in it {}, memfd allocated {}\n",
                     human_size(stats.host().rss_bytes()),
                     human_size(stats.host().rss_shmem_bytes()),
                     human_size(stats.host().memfd_allocated_bytes()));
  const v1::PageStateCounts& p = stats.pages();
  out << fmt::format("pages: resident {}, ballooned {}, reclaimed {}, reported {}\n",
                     pages(p.resident()), pages(p.ballooned()), pages(p.reclaimed()),
                     pages(p.reported()));
}

void print_balloon(std::ostream& out, const v1::BalloonStats& balloon) {
  if (!balloon.present()) {
    out << "balloon: none\n";
    return;
  }
  out << fmt::format(
      "balloon: target {}, actual {}; pages inflated {}, deflated {}, reported {}; refused "
      "pfns {}, backend failures {}\n",
      human_size(balloon.target_bytes()), human_size(balloon.actual_bytes()),
      balloon.inflated_pages(), balloon.deflated_pages(), balloon.reported_pages(),
      balloon.refused_pfns(), balloon.backend_failures());
  if (!balloon.guest_stats().empty()) {
    std::map<std::string, uint64_t> sorted(balloon.guest_stats().begin(),
                                           balloon.guest_stats().end());
    std::string line = "guest stats:";
    for (const auto& [tag, value] : sorted) {
      const bool bytes = tag.find("memory") != std::string::npos || tag == "disk-caches" ||
                         tag == "hugetlb-allocations-bytes";
      line += fmt::format(" {} {},", tag, bytes ? human_size(value) : std::to_string(value));
    }
    line.pop_back();
    out << line << " (at " << format_time(balloon.guest_stats_unix_ns()) << ")\n";
  }
}

void print_reclaim(std::ostream& out, const v1::MemoryStats& stats) {
  const v1::ReclaimStats& r = stats.reclaim();
  if (!r.enabled()) {
    out << "reclaim: off\n";
    return;
  }
  out << fmt::format(
      "reclaim: policy \"{}\"; {} epochs, pages reclaimed {}, refaulted {}, aborted {}, refused "
      "{}, backoffs {}; refault p50 {}, p99 {}\n",
      r.policy(), r.epochs(), r.pages_reclaimed(), r.pages_refaulted(), r.pages_aborted(),
      r.pages_refused(), r.backoffs(), args::human_duration_ns(r.refault_p50_ns()),
      args::human_duration_ns(r.refault_p99_ns()));
  const v1::PoolStats& pool = stats.pool();
  out << fmt::format(
      "pool: {} entries, {} stored in {} (ratio {:.2f}), limit {}; swap {} entries, {}\n",
      pool.entries(), human_size(pool.stored_bytes()), human_size(pool.compressed_bytes()),
      pool.compression_ratio(), human_size(pool.limit_bytes()), pool.swap_entries(),
      human_size(pool.swap_bytes()));
  const v1::WorkingSet& ws = stats.working_set();
  if (ws.bins_size() > 0 || ws.estimate_bytes() != 0) {
    std::string line = fmt::format("working set: {} (epoch {} ms);",
                                   human_size(ws.estimate_bytes()), ws.epoch_ms());
    for (const v1::WorkingSet::Bin& bin : ws.bins()) {
      line += bin.younger_than_ms() == 0
                  ? fmt::format(" older {}", pages(bin.pages()))
                  : fmt::format(" <{}ms {},", bin.younger_than_ms(), pages(bin.pages()));
    }
    out << line << "\n";
  }
}

void print_kvm_and_faults(std::ostream& out, const v1::MemoryStats& stats) {
  const v1::KvmMmuStats& kvm = stats.kvm();
  out << fmt::format(
      "kvm mmu: 4K pages {}, 2M pages {}, 1G pages {}; page faults taken {}, "
      "fixed {}\n",
      kvm.pages_4k(), kvm.pages_2m(), kvm.pages_1g(), kvm.pf_taken(), kvm.pf_fixed());
  const v1::Stage2TlbStats& tlb = stats.tlb();
  out << fmt::format("stage-2 tlb: hits {}, misses {}, invalidations {}, full flushes {}\n",
                     tlb.hits(), tlb.misses(), tlb.invalidations(), tlb.flushes_all());
  if (stats.faults_size() == 0) {
    out << "faults: none\n";
    return;
  }
  Table table({"FAULT KIND", "RESOLUTION", "COUNT"});
  for (const v1::FaultCount& count : stats.faults()) {
    table.add({enum_word(v1::FaultKind_Name(count.kind()), "FAULT_KIND_"),
               enum_word(v1::FaultResolution_Name(count.resolution()), "FAULT_RESOLUTION_"),
               std::to_string(count.count())});
  }
  table.print(out);
}

int stats(Context& context, const std::string& name) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::GetMemoryStatsRequest request;
  request.set_name(name);
  v1::GetMemoryStatsResponse response;
  auto call = context.call();
  grpc::Status status =
      v1::MemoryService::NewStub(channel)->GetMemoryStats(call.get(), request, &response);
  if (!status.ok()) {
    return context.finish(status);
  }
  if (context.json()) {
    context.print_json(response);
    return 0;
  }
  std::ostream& out = context.io().out;
  print_host_and_pages(out, response.stats());
  print_balloon(out, response.stats().balloon());
  print_reclaim(out, response.stats());
  print_kvm_and_faults(out, response.stats());
  return 0;
}

}  // namespace

void add_stats_command(CLI::App& app, Context& context) {
  auto name = std::make_shared<std::string>();
  CLI::App* command = add_top_command(app, "stats");
  add_vm_name(*command, *name);
  command->callback(
      [&context, name] { context.action = [&context, name] { return stats(context, *name); }; });
}

}  // namespace hvmm::client
