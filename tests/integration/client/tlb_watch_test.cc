// tlb shootdown of both stages and the watch streams, against a recording fake daemon.
#include <gtest/gtest.h>

#include "client_run.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client::testing {
namespace {

namespace v1 = hvmm::v1;

// Stage 2 takes an IPA range (or none: all guest RAM) and reports what was dropped.
TEST(ClientTlb, Stage2ShootdownWithRange) {
  FakeDaemon daemon;
  v1::TlbShootdownResponse response;
  response.set_stage(v1::TLB_STAGE_2);
  response.set_latency_ns(1'230'000);
  v1::Stage2ShootdownResult& result = *response.mutable_stage2();
  result.mutable_range()->set_start(0x100000);
  result.mutable_range()->set_size(2u << 20);
  result.set_pages(512);
  result.set_tlb_entries_dropped(7);
  result.set_mechanism("memslot-flags");
  result.mutable_kvm_before()->set_pages_4k(600);
  result.mutable_kvm_after()->set_pages_4k(88);
  daemon.respond("Tlb.Shootdown", response);
  ClientRun r = run(daemon, {"tlb", "shootdown", "web", "--stage", "2", "--range", "0x100000:2M"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::TlbShootdownRequest>("Tlb.Shootdown");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].stage(), v1::TLB_STAGE_2);
  EXPECT_EQ(requests[0].range().start(), 0x100000u);
  EXPECT_EQ(requests[0].range().size(), 2u << 20);
  EXPECT_FALSE(requests[0].has_stage1());
  EXPECT_EQ(r.out,
            "stage-2 shootdown of web: [0x100000, 0x300000) (512 pages), 7 TLB entries dropped, "
            "mechanism memslot-flags; KVM 4K pages 600 -> 88, 2M pages 0 -> 0; latency 1.23 ms\n");
  ASSERT_EQ(run(daemon, {"tlb", "shootdown", "web", "--stage", "2"}).status, 0);
  EXPECT_FALSE(daemon.requests<v1::TlbShootdownRequest>("Tlb.Shootdown")[1].has_range());
}

// Stage 1 flushes the kernel's entries by default, or a held workload's space or range.
TEST(ClientTlb, Stage1Scopes) {
  FakeDaemon daemon;
  v1::TlbShootdownResponse response;
  response.set_stage(v1::TLB_STAGE_1);
  response.set_latency_ns(45'000);
  response.mutable_stage1()->set_cpus(2);
  response.mutable_stage1()->set_method("invlpg");
  response.mutable_stage1()->set_pages(4);
  response.mutable_stage1()->set_guest_ns(12'000);
  daemon.respond("Tlb.Shootdown", response);
  ClientRun kernel = run(daemon, {"tlb", "shootdown", "web", "--stage", "1"});
  ASSERT_EQ(kernel.status, 0) << kernel.err;
  EXPECT_EQ(kernel.out,
            "stage-1 shootdown of web: invlpg on 2 vCPUs, 4 pages, guest 12.0 us; latency 45.0 "
            "us\n");
  ASSERT_EQ(run(daemon,
                {"tlb", "shootdown", "web", "--stage", "1", "--scope", "space", "--workload", "3"})
                .status,
            0);
  ASSERT_EQ(run(daemon, {"tlb", "shootdown", "web", "--stage", "1", "--scope", "range",
                         "--workload", "3", "--va", "0x400000", "--length", "16K"})
                .status,
            0);
  auto requests = daemon.requests<v1::TlbShootdownRequest>("Tlb.Shootdown");
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].stage(), v1::TLB_STAGE_1);
  EXPECT_EQ(requests[0].stage1().scope(), v1::STAGE1_SCOPE_KERNEL_ALL);
  EXPECT_EQ(requests[1].stage1().scope(), v1::STAGE1_SCOPE_ADDRESS_SPACE);
  EXPECT_EQ(requests[1].stage1().workload(), 3u);
  EXPECT_EQ(requests[2].stage1().scope(), v1::STAGE1_SCOPE_RANGE);
  EXPECT_EQ(requests[2].stage1().va(), 0x400000u);
  EXPECT_EQ(requests[2].stage1().length(), 16u << 10);
  ClientRun json = run(daemon, {"tlb", "shootdown", "web", "--stage", "1", "--json"});
  EXPECT_TRUE(same(from_json<v1::TlbShootdownResponse>(json.out), response));
}

// Flags of the other stage, or a scope without what it needs, are refused unsent.
TEST(ClientTlb, MismatchedFlagsAreBadArguments) {
  FakeDaemon daemon;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--stage", "1", "--range", "0:4K"}, "--range is for --stage 2"},
      {{"--stage", "2", "--scope", "kernel"}, "--scope, --workload, --va and --length are for"},
      {{"--stage", "1", "--scope", "space"}, "--scope space: needs --workload ID"},
      {{"--stage", "1", "--workload", "2"}, "--workload: only with --scope range or space"},
      {{"--stage", "1", "--scope", "range", "--workload", "2", "--va", "0x1000"},
       "--va and --length: both with --scope range"},
      {{"--stage", "1", "--scope", "all"}, "--scope all: must be kernel, range or space"},
      {{"--stage", "1", "--scope", "range", "--workload", "2", "--va", "zz", "--length", "4K"},
       "--va: 'zz' is not an address"},
      {{"--stage", "3"}, "--stage: 3 not in {1,2}"},
      {{}, "--stage is required"},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args{"tlb", "shootdown", "web"};
    args.insert(args.end(), flags.begin(), flags.end());
    ClientRun r = run(daemon, args);
    EXPECT_EQ(r.status, 120) << message;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  EXPECT_EQ(daemon.request_count(), 0u);
}

// `notifier watch` passes its filter and prints one line per event.
TEST(ClientWatch, NotifierEvents) {
  FakeDaemon daemon;
  v1::NotifierEvent event;
  event.set_time_unix_ns(1'700'000'000'123'456'000);
  event.set_sequence(42);
  event.mutable_range()->set_start(0x100000);
  event.mutable_range()->set_size(1u << 20);
  event.set_reason(v1::CHANGE_REASON_BALLOON);
  event.set_phase(v1::NOTIFIER_PHASE_START);
  event.set_blockable(true);
  daemon.stream("Notifier.Watch", event);
  event.set_phase(v1::NOTIFIER_PHASE_END);
  daemon.stream("Notifier.Watch", event);
  ClientRun r = run(daemon, {"notifier", "watch", "web", "--range", "0x0:16M", "--buffer", "64"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::WatchNotifierRequest>("Notifier.Watch");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].filter().size(), 16u << 20);
  EXPECT_EQ(requests[0].buffer(), 64u);
  EXPECT_EQ(r.out,
            "2023-11-14T22:13:20.123456Z seq 42 start balloon [0x100000, 0x200000) 1.00 MiB\n"
            "2023-11-14T22:13:20.123456Z seq 42 end balloon [0x100000, 0x200000) 1.00 MiB\n");
  ClientRun json = run(daemon, {"notifier", "watch", "web", "--json"});
  auto objects = lines(json.out);
  ASSERT_EQ(objects.size(), 2u);
  EXPECT_EQ(from_json<v1::NotifierEvent>(objects[1]).phase(), v1::NOTIFIER_PHASE_END);
  EXPECT_FALSE(daemon.requests<v1::WatchNotifierRequest>("Notifier.Watch")[1].has_filter());
}

// A watcher dropped for reading too slowly ends with RESOURCE_EXHAUSTED: exit 6.
TEST(ClientWatch, DroppedWatcherIsResourceExhausted) {
  FakeDaemon daemon;
  daemon.fail("Notifier.Watch", grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                             "buffer: 4096 events queued; the watch is dropped"));
  ClientRun r = run(daemon, {"notifier", "watch", "web"});
  EXPECT_EQ(r.status, 6);
  EXPECT_EQ(r.err, "hvmm: buffer: 4096 events queued; the watch is dropped\n");
}

// `faults watch` with or without a VM, one line per fault record.
TEST(ClientWatch, FaultRecords) {
  FakeDaemon daemon;
  v1::Fault fault;
  fault.set_vm("web");
  fault.set_vmid(3);
  fault.set_vcpu(1);
  fault.set_ipa(0xfe000000);
  fault.set_access(v1::ACCESS_READ);
  fault.set_size(4);
  fault.set_kind(v1::FAULT_KIND_MMIO_UNBACKED);
  fault.set_resolution(v1::FAULT_RESOLUTION_EMULATED);
  fault.set_latency_ns(2500);
  fault.set_dropped_before(2);
  daemon.stream("Fault.Watch", fault);
  ClientRun all = run(daemon, {"faults", "watch"});
  ASSERT_EQ(all.status, 0) << all.err;
  EXPECT_EQ(all.out,
            "- vm web vmid 3 vcpu 1 ipa 0xfe000000 read size 4 mmio-unbacked -> emulated in 2.50 "
            "us\n");
  EXPECT_NE(all.err.find("2 fault records dropped"), std::string::npos) << all.err;
  ASSERT_EQ(run(daemon, {"faults", "watch", "web", "--buffer", "32"}).status, 0);
  auto requests = daemon.requests<v1::WatchFaultsRequest>("Fault.Watch");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].name(), "");
  EXPECT_EQ(requests[1].name(), "web");
  EXPECT_EQ(requests[1].buffer(), 32u);
}

}  // namespace
}  // namespace hvmm::client::testing
