// The memory commands against a recording fake daemon: balloon (with progress), reclaim,
// reclaim policy, stage-2 dumps over several pages, and stats.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "client_run.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client::testing {
namespace {

namespace v1 = hvmm::v1;

// A progress update of the balloon.
v1::BalloonProgress progress(uint64_t actual_mib, bool reached) {
  v1::BalloonProgress update;
  update.set_target_bytes(64u << 20);
  update.set_actual_bytes(actual_mib << 20);
  update.set_host_rss_bytes(200u << 20);
  update.set_reached(reached);
  return update;
}

// Without --wait the target is set and the call returns at once.
TEST(ClientBalloon, SetWithoutWait) {
  FakeDaemon daemon;
  v1::SetBalloonTargetResponse response;
  response.mutable_balloon()->set_target_bytes(64u << 20);
  daemon.respond("Memory.SetBalloonTarget", response);
  ClientRun r = run(daemon, {"balloon", "set", "web", "64M"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::SetBalloonTargetRequest>("Memory.SetBalloonTarget");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].name(), "web");
  EXPECT_EQ(requests[0].target_bytes(), 64u << 20);
  EXPECT_EQ(requests[0].wait_ms(), 0u);
  EXPECT_EQ(r.out, "balloon web: target 64.0 MiB (now 0 B)\n");
  EXPECT_EQ(run(daemon, {"balloon", "set", "web", "lots"}).status, 120);
  EXPECT_EQ(daemon.requests<v1::SetBalloonTargetRequest>("Memory.SetBalloonTarget").size(), 1u);
}

// With --wait and no terminal, each update is one line, and reaching the target is 0.
TEST(ClientBalloon, WaitPrintsOneLinePerUpdate) {
  FakeDaemon daemon;
  for (auto [mib, reached] : {std::pair{0u, false}, std::pair{32u, false}, std::pair{64u, true}}) {
    daemon.stream("Memory.WatchBalloon", progress(mib, reached));
  }
  ClientRun r = run(daemon, {"balloon", "set", "web", "64M", "--wait", "30s"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::WatchBalloonRequest>("Memory.WatchBalloon");
  ASSERT_EQ(requests.size(), 1u);
  ASSERT_TRUE(requests[0].has_target_bytes());
  EXPECT_EQ(requests[0].target_bytes(), 64u << 20);
  EXPECT_EQ(requests[0].deadline_ms(), 30000u);
  EXPECT_EQ(r.out,
            "balloon web: 0 B of 64.0 MiB, host RSS 200 MiB\n"
            "balloon web: 32.0 MiB of 64.0 MiB, host RSS 200 MiB\n"
            "balloon web: 64.0 MiB of 64.0 MiB, host RSS 200 MiB, reached\n");
  EXPECT_EQ(r.out.find('\r'), std::string::npos);

  ClientRun json = run(daemon, {"balloon", "set", "web", "64M", "--wait", "30s", "--json"}, true);
  auto objects = lines(json.out);
  ASSERT_EQ(objects.size(), 3u) << json.out;
  EXPECT_TRUE(from_json<v1::BalloonProgress>(objects[2]).reached());
}

// On a terminal the progress is one bar redrawn in place, ended by a newline.
TEST(ClientBalloon, WaitOnATerminalDrawsABar) {
  FakeDaemon daemon;
  daemon.stream("Memory.WatchBalloon", progress(0, false));
  daemon.stream("Memory.WatchBalloon", progress(32, false));
  daemon.stream("Memory.WatchBalloon", progress(64, true));
  ClientRun r = run(daemon, {"balloon", "set", "web", "64M", "--wait", "30s"}, true);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\r'), 3);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  EXPECT_NE(r.out.find("[###############...............]  50%"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[##############################] 100%"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.back(), '\n');
}

// A target not reached in time is exit 3, whether the daemon says so or the stream just ends.
TEST(ClientBalloon, NotReachedIsDeadlineExceeded) {
  FakeDaemon daemon;
  daemon.stream("Memory.WatchBalloon", progress(10, false));
  ClientRun ended = run(daemon, {"balloon", "set", "web", "64M", "--wait", "1s"});
  EXPECT_EQ(ended.status, 3);
  EXPECT_NE(ended.err.find("the target 64.0 MiB was not reached"), std::string::npos) << ended.err;
  daemon.fail("Memory.WatchBalloon", grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                                  "web: balloon at 10 MiB of 64 MiB"));
  ClientRun failed = run(daemon, {"balloon", "set", "web", "64M", "--wait", "1s"});
  EXPECT_EQ(failed.status, 3);
  EXPECT_EQ(failed.err, "hvmm: web: balloon at 10 MiB of 64 MiB\n");
}

// `reclaim --epochs N` asks for one epoch N times, shows each, then sums them up.
TEST(ClientReclaim, EpochsWithProgress) {
  FakeDaemon daemon;
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    v1::ReclaimResponse response;
    response.mutable_before()->set_pages_reclaimed(epoch * 100);
    response.mutable_after()->set_pages_reclaimed((epoch + 1) * 100);
    response.mutable_after()->set_pages_refaulted(epoch);
    response.set_duration_ns(1'000'000);
    daemon.respond("Memory.Reclaim", response);
  }
  ClientRun r = run(daemon, {"reclaim", "web", "--epochs", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::ReclaimRequest>("Memory.Reclaim");
  ASSERT_EQ(requests.size(), 3u);
  for (const v1::ReclaimRequest& request : requests) {
    EXPECT_EQ(request.name(), "web");
    EXPECT_EQ(request.epochs(), 1u);
  }
  auto out = lines(r.out);
  ASSERT_EQ(out.size(), 4u) << r.out;
  EXPECT_EQ(out[0].rfind("reclaim web: epoch 1/3: +100 pages reclaimed (100 in all)", 0), 0u);
  EXPECT_EQ(out[2].rfind("reclaim web: epoch 3/3: +100 pages reclaimed (300 in all)", 0), 0u);
  EXPECT_EQ(out[3].rfind("reclaim web: 3 epochs, 300 pages reclaimed (1.17 MiB), 2 refaulted", 0),
            0u)
      << out[3];
  EXPECT_EQ(run(daemon, {"reclaim", "web", "--epochs", "0"}).status, 120);
  ClientRun json = run(daemon, {"reclaim", "web", "--epochs", "2", "--json"});
  EXPECT_EQ(lines(json.out).size(), 2u) << json.out;
}

// `reclaim --set-policy` replaces the policy through Reclaim's set_policy, and runs no epoch.
TEST(ClientReclaim, SetPolicySetsThePolicy) {
  FakeDaemon daemon;
  v1::ReclaimResponse response;
  response.mutable_before()->set_policy("cold=120");
  response.mutable_after()->set_policy("cold=3");
  daemon.respond("Memory.Reclaim", response);
  ClientRun r = run(daemon, {"reclaim", "web", "--set-policy", "cold=3"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::ReclaimRequest>("Memory.Reclaim");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].action_case(), v1::ReclaimRequest::kSetPolicy);
  EXPECT_EQ(requests[0].set_policy(), "cold=3");
  EXPECT_EQ(r.out, "reclaim policy of web: \"cold=3\" (was \"cold=120\")\n");
  EXPECT_EQ(run(daemon, {"reclaim", "web", "--set-policy", "cold=3", "--epochs", "2"}).status, 120);
  EXPECT_EQ(daemon.requests<v1::ReclaimRequest>("Memory.Reclaim").size(), 1u);
}

// A page of a stage-2 dump: `count` mappings from `first`, then `token`.
v1::DumpStage2Response dump_page(uint64_t first, int count, const std::string& token) {
  v1::DumpStage2Response page;
  page.mutable_dump()->set_vmid(3);
  page.mutable_dump()->set_ipa_bits(40);
  for (int i = 0; i < count; ++i) {
    v1::Mapping* m = page.mutable_dump()->add_mappings();
    m->mutable_range()->set_start((first + static_cast<uint64_t>(i)) << 21);
    m->mutable_range()->set_size(2u << 20);
    m->set_host_offset((first + static_cast<uint64_t>(i)) << 21);
    m->set_permissions(v1::PERMISSIONS_READ_WRITE);
    m->set_memory_type(v1::MEMORY_TYPE_NORMAL_WRITE_BACK);
    m->mutable_state()->set_backing(i % 2 ? v1::BACKING_BALLOONED : v1::BACKING_RESIDENT);
    m->set_largest_block_level(1);
  }
  page.set_next_page_token(token);
  return page;
}

// Every page token is followed; the table and the JSON hold every mapping of every page.
TEST(ClientStage2, DumpFollowsEveryPageToken) {
  FakeDaemon daemon;
  daemon.respond("Memory.DumpStage2", dump_page(0, 3, "p1"));
  daemon.respond("Memory.DumpStage2", dump_page(3, 3, "p2"));
  daemon.respond("Memory.DumpStage2", dump_page(6, 2, ""));
  ClientRun r = run(daemon, {"stage2", "dump", "web", "--range", "0x0:1G", "--page-size", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::DumpStage2Request>("Memory.DumpStage2");
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].page_token(), "");
  EXPECT_EQ(requests[1].page_token(), "p1");
  EXPECT_EQ(requests[2].page_token(), "p2");
  for (const v1::DumpStage2Request& request : requests) {
    EXPECT_EQ(request.range().start(), 0u);
    EXPECT_EQ(request.range().size(), uint64_t{1} << 30);
    EXPECT_EQ(request.page_size(), 3u);
  }
  auto out = lines(r.out);
  ASSERT_EQ(out.size(), 10u) << r.out;
  EXPECT_EQ(out[0], "web: vmid 3, 40-bit IPA space, 8 mappings");
  EXPECT_EQ(out[1].rfind("IPA RANGE", 0), 0u);
  EXPECT_EQ(out[2].rfind("[0x0, 0x200000)", 0), 0u) << out[2];
  EXPECT_NE(out[3].find("ballooned"), std::string::npos) << out[3];
  EXPECT_EQ(out[9].rfind("[0xe00000, 0x1000000)", 0), 0u) << out[9];
  EXPECT_NE(out[9].find("rw"), std::string::npos);
  EXPECT_NE(out[9].find("2M"), std::string::npos);
}

// --json prints one response with every page's mappings and no token left.
TEST(ClientStage2, DumpJsonIsOneObject) {
  FakeDaemon daemon;
  daemon.respond("Memory.DumpStage2", dump_page(0, 2, "next"));
  daemon.respond("Memory.DumpStage2", dump_page(2, 2, ""));
  ClientRun r = run(daemon, {"stage2", "dump", "web", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(lines(r.out).size(), 1u);
  auto all = from_json<v1::DumpStage2Response>(r.out);
  EXPECT_EQ(all.dump().mappings_size(), 4);
  EXPECT_EQ(all.next_page_token(), "");
  EXPECT_EQ(all.dump().mappings(3).range().start(), 3u << 21);
  EXPECT_FALSE(daemon.requests<v1::DumpStage2Request>("Memory.DumpStage2")[0].has_range());
}

// A daemon that hands out the same token twice would loop forever: the dump stops with 1.
TEST(ClientStage2, RepeatedTokenStops) {
  FakeDaemon daemon;
  daemon.respond("Memory.DumpStage2", dump_page(0, 1, "same"));
  ClientRun r = run(daemon, {"stage2", "dump", "web"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("page token 'same' twice"), std::string::npos) << r.err;
  EXPECT_EQ(daemon.requests<v1::DumpStage2Request>("Memory.DumpStage2").size(), 2u);
}

// --svg FILE draws every page of the dump (the devices of the first page too) into FILE and
// prints no table; --table prints it as well.
TEST(ClientStage2, SvgWritesThePicture) {
  FakeDaemon daemon;
  v1::DumpStage2Response first = dump_page(0, 2, "next");
  first.mutable_dump()->set_memory_bytes(256u << 20);
  v1::DeviceRegion* device = first.mutable_dump()->add_devices();
  device->mutable_range()->set_start(0xd0000000);
  device->mutable_range()->set_size(0x1000);
  device->set_name("virtio-balloon@0xd0000000");
  daemon.respond("Memory.DumpStage2", first);
  daemon.respond("Memory.DumpStage2", dump_page(2, 2, ""));
  const std::string path = ::testing::TempDir() + "client_stage2.svg";
  std::remove(path.c_str());
  ClientRun r = run(daemon, {"stage2", "dump", "web", "--svg", path});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  std::ifstream file(path);
  const std::string svg((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("stage-2 map of VM web: VMID 3, RAM 256 MiB"), std::string::npos);
  EXPECT_NE(
      svg.find("data-start=\"0x600000\" data-size=\"0x200000\" data-state=\"ballooned.block\""),
      std::string::npos);
  EXPECT_NE(svg.find("data-name=\"virtio-balloon@0xd0000000\""), std::string::npos);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");

  daemon.respond("Memory.DumpStage2", dump_page(0, 1, ""));
  ClientRun both = run(daemon, {"stage2", "dump", "web", "--svg", path, "--table"});
  ASSERT_EQ(both.status, 0) << both.err;
  EXPECT_EQ(lines(both.out).size(), 3u) << both.out;

  daemon.respond("Memory.DumpStage2", dump_page(0, 1, ""));
  ClientRun out = run(daemon, {"stage2", "dump", "web", "--svg", "-"});
  ASSERT_EQ(out.status, 0) << out.err;
  EXPECT_EQ(out.out.rfind("<?xml", 0), 0u);
}

// --svg errors name the flag and the file; nothing is sent for a bad combination.
TEST(ClientStage2, SvgErrors) {
  FakeDaemon daemon;
  ClientRun stdout_twice = run(daemon, {"stage2", "dump", "web", "--svg", "-", "--table"});
  EXPECT_EQ(stdout_twice.status, 120);
  EXPECT_NE(stdout_twice.err.find("--svg -"), std::string::npos) << stdout_twice.err;
  EXPECT_EQ(run(daemon, {"stage2", "dump", "web", "--table"}).status, 120);
  EXPECT_EQ(daemon.request_count(), 0u);

  daemon.respond("Memory.DumpStage2", dump_page(0, 1, ""));
  ClientRun unwritable = run(daemon, {"stage2", "dump", "web", "--svg", "/nonexistent/dir/x.svg"});
  EXPECT_EQ(unwritable.status, 1);
  EXPECT_EQ(unwritable.err,
            "hvmm: --svg: cannot write '/nonexistent/dir/x.svg': No such file or directory\n");

  v1::DumpStage2Response overlapping = dump_page(0, 2, "");
  overlapping.mutable_dump()->mutable_mappings(1)->mutable_range()->set_start(0x100000);
  daemon.respond("Memory.DumpStage2", overlapping);
  ClientRun bad = run(daemon, {"stage2", "dump", "web", "--svg", "-"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("hvmm: --svg: the daemon's dump cannot be drawn: [0x100000, 0x300000)"),
            std::string::npos)
      << bad.err;
}

// A bad --range is refused before anything is sent.
TEST(ClientStage2, BadRangeIsABadArgument) {
  FakeDaemon daemon;
  ClientRun r = run(daemon, {"stage2", "dump", "web", "--range", "0x1000"});
  EXPECT_EQ(r.status, 120);
  EXPECT_EQ(r.err,
            "hvmm: --range: '0x1000' is not a range (expected START:SIZE, e.g. 0x100000:2M)\n");
  EXPECT_EQ(daemon.request_count(), 0u);
}

// `stats` names every section in human units; --json is the response.
TEST(ClientStats, HumanAndJson) {
  FakeDaemon daemon;
  v1::GetMemoryStatsResponse response;
  v1::MemoryStats& stats = *response.mutable_stats();
  stats.set_name("web");
  stats.set_vmid(3);
  stats.set_memory_bytes(256u << 20);
  stats.mutable_host()->set_rss_bytes(150u << 20);
  stats.mutable_pages()->set_resident(1024);
  stats.mutable_pages()->set_ballooned(16384);
  stats.mutable_balloon()->set_present(true);
  stats.mutable_balloon()->set_target_bytes(64u << 20);
  (*stats.mutable_balloon()->mutable_guest_stats())["free-memory"] = 100u << 20;
  stats.mutable_reclaim()->set_enabled(true);
  stats.mutable_reclaim()->set_policy("cold=3");
  stats.mutable_kvm()->set_pages_4k(77);
  v1::FaultCount* faults = stats.add_faults();
  faults->set_kind(v1::FAULT_KIND_MMIO_UNBACKED);
  faults->set_resolution(v1::FAULT_RESOLUTION_EMULATED);
  faults->set_count(5);
  daemon.respond("Memory.GetMemoryStats", response);
  ClientRun r = run(daemon, {"stats", "web"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(daemon.requests<v1::GetMemoryStatsRequest>("Memory.GetMemoryStats").at(0).name(),
            "web");
  for (const char* text :
       {"web (vmid 3): 256 MiB of guest RAM\n", "host: rss 150 MiB", "resident 1024 (4.00 MiB)",
        "ballooned 16384 (64.0 MiB)", "balloon: target 64.0 MiB", "free-memory 100 MiB",
        "reclaim: policy \"cold=3\"", "kvm mmu: 4K pages 77", "mmio-unbacked", "emulated"}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << text << " in\n" << r.out;
  }
  ClientRun json = run(daemon, {"stats", "web", "--json"});
  EXPECT_TRUE(same(from_json<v1::GetMemoryStatsResponse>(json.out), response));
}

}  // namespace
}  // namespace hvmm::client::testing
