// The vm commands against a recording fake daemon: argv -> request fields, tables and --json.
#include <gtest/gtest.h>

#include <filesystem>

#include "client_run.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client::testing {
namespace {

namespace v1 = hvmm::v1;

// A running VM with figures, and a stopped one with an exit.
v1::ListVmsResponse two_vms() {
  v1::ListVmsResponse list;
  v1::Vm* web = list.add_vms();
  web->set_name("web");
  web->set_state(v1::VM_STATE_RUNNING);
  web->set_vmid(3);
  web->set_vmid_generation(1);
  web->set_pid(4242);
  web->mutable_spec()->set_memory_bytes(256u << 20);
  web->mutable_memory()->set_memory_bytes(256u << 20);
  web->mutable_memory()->set_host_rss_bytes(100u << 20);
  web->mutable_memory()->set_balloon_target_bytes(64u << 20);
  web->mutable_memory()->set_balloon_actual_bytes(32u << 20);
  v1::Vm* db = list.add_vms();
  db->set_name("db");
  db->set_state(v1::VM_STATE_STOPPED);
  db->mutable_exit()->set_status(0);
  db->mutable_exit()->set_reason("guest exited with status 0");
  db->mutable_exit()->add_last_console_lines("bye");
  return list;
}

// Every flag of `vm create` lands in its CreateVmRequest field.
TEST(ClientVm, CreateSendsEveryFlag) {
  FakeDaemon daemon;
  v1::CreateVmResponse created;
  created.mutable_vm()->set_name("web");
  daemon.respond("Vm.Create", created);
  ClientRun r = run(daemon, {"vm",
                             "create",
                             "web",
                             "--kernel",
                             "/k.elf",
                             "--initrd",
                             "/i.img",
                             "--cmdline",
                             "a b",
                             "--memory",
                             "256M",
                             "--vcpus",
                             "2",
                             "--balloon",
                             "64M",
                             "--free-page-reporting",
                             "--balloon-stats-interval",
                             "5",
                             "--reclaim",
                             "cold=3",
                             "--fault-around",
                             "64K",
                             "--console-log-max",
                             "1M",
                             "--dirty-tracking",
                             "ring",
                             "--no-control",
                             "--start"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::CreateVmRequest>("Vm.Create");
  ASSERT_EQ(requests.size(), 1u);
  const v1::CreateVmRequest& request = requests[0];
  EXPECT_EQ(request.name(), "web");
  EXPECT_TRUE(request.start());
  const v1::VmSpec& spec = request.spec();
  EXPECT_EQ(spec.kernel(), "/k.elf");
  EXPECT_EQ(spec.initrd(), "/i.img");
  EXPECT_EQ(spec.cmdline(), "a b");
  EXPECT_EQ(spec.memory_bytes(), 256u << 20);
  EXPECT_EQ(spec.vcpus(), 2u);
  EXPECT_EQ(spec.balloon().initial_target_bytes(), 64u << 20);
  EXPECT_TRUE(spec.balloon().free_page_reporting());
  EXPECT_EQ(spec.balloon().stats_interval_seconds(), 5u);
  EXPECT_FALSE(spec.balloon().disabled());
  ASSERT_TRUE(spec.has_reclaim_policy());
  EXPECT_EQ(spec.reclaim_policy(), "cold=3");
  ASSERT_TRUE(spec.has_fault_around_bytes());
  EXPECT_EQ(spec.fault_around_bytes(), 64u << 10);
  ASSERT_TRUE(spec.has_console_log_max_bytes());
  EXPECT_EQ(spec.console_log_max_bytes(), 1u << 20);
  EXPECT_EQ(spec.dirty_tracking(), "ring");
  ASSERT_TRUE(spec.has_control_channel());
  EXPECT_FALSE(spec.control_channel());
  EXPECT_NE(r.out.find("name: web"), std::string::npos) << r.out;
}

// Flags not given leave the spec's fields unset, so the daemon's defaults apply.
TEST(ClientVm, CreateLeavesDefaultsToTheDaemon) {
  FakeDaemon daemon;
  ClientRun r = run(daemon, {"vm", "create", "web", "--no-balloon", "--reclaim", ""});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::CreateVmRequest>("Vm.Create");
  ASSERT_EQ(requests.size(), 1u);
  const v1::VmSpec& spec = requests[0].spec();
  EXPECT_FALSE(requests[0].start());
  EXPECT_EQ(spec.memory_bytes(), 0u);
  EXPECT_EQ(spec.vcpus(), 0u);
  EXPECT_TRUE(spec.balloon().disabled());
  EXPECT_FALSE(spec.has_fault_around_bytes());
  EXPECT_FALSE(spec.has_console_log_max_bytes());
  EXPECT_FALSE(spec.has_control_channel()) << "the daemon's default (on) applies";
  ASSERT_TRUE(spec.has_reclaim_policy());
  EXPECT_EQ(spec.reclaim_policy(), "") << "the default policy";
  EXPECT_EQ(spec.dirty_tracking(), "");
  EXPECT_FALSE(spec.has_policy()) << "the host policy's defaults apply";
}

// --floor, --priority and --policy-exempt fill VmSpec.policy; a bad one names its flag.
TEST(ClientVm, CreateSendsTheHostPolicyFlags) {
  FakeDaemon daemon;
  ASSERT_EQ(run(daemon, {"vm", "create", "web", "--floor", "96M", "--priority", "-3"}).status, 0);
  ASSERT_EQ(run(daemon, {"vm", "create", "db", "--policy-exempt"}).status, 0);
  ASSERT_EQ(run(daemon, {"vm", "create", "ci", "--priority", "7"}).status, 0);
  auto requests = daemon.requests<v1::CreateVmRequest>("Vm.Create");
  ASSERT_EQ(requests.size(), 3u);
  ASSERT_TRUE(requests[0].spec().has_policy());
  EXPECT_EQ(requests[0].spec().policy().floor_bytes(), 96u << 20);
  EXPECT_EQ(requests[0].spec().policy().priority(), -3);
  EXPECT_FALSE(requests[0].spec().policy().exempt());
  EXPECT_TRUE(requests[1].spec().policy().exempt());
  EXPECT_EQ(requests[1].spec().policy().floor_bytes(), 0u);
  EXPECT_EQ(requests[2].spec().policy().priority(), 7);
  EXPECT_EQ(requests[2].spec().policy().floor_bytes(), 0u);

  ClientRun floor = run(daemon, {"vm", "create", "web", "--floor", "big"});
  EXPECT_EQ(floor.status, 120);
  EXPECT_EQ(floor.err.rfind("hvmm: --floor: 'big' is not a size", 0), 0u) << floor.err;
  ClientRun priority = run(daemon, {"vm", "create", "web", "--priority", "high"});
  EXPECT_EQ(priority.status, 120);
  EXPECT_NE(priority.err.find("--priority"), std::string::npos) << priority.err;
  EXPECT_EQ(daemon.requests<v1::CreateVmRequest>("Vm.Create").size(), 3u);
}

// Relative kernel and initrd paths are sent absolute: the daemon has its own directory.
TEST(ClientVm, CreateSendsAbsolutePaths) {
  FakeDaemon daemon;
  ASSERT_EQ(
      run(daemon, {"vm", "create", "web", "--kernel", "k.elf", "--initrd", "./a/../i.img"}).status,
      0);
  const std::string cwd = std::filesystem::current_path().string();
  const v1::VmSpec spec = daemon.requests<v1::CreateVmRequest>("Vm.Create").at(0).spec();
  EXPECT_EQ(spec.kernel(), cwd + "/k.elf");
  EXPECT_EQ(spec.initrd(), cwd + "/i.img");
}

// A flag the client cannot read is a bad argument naming it, and nothing is sent.
TEST(ClientVm, CreateRefusesUnreadableFlagsWithoutSending) {
  FakeDaemon daemon;
  for (const auto& [flag, value, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--memory", "lots", "hvmm: --memory: 'lots' is not a size"},
           {"--balloon", "12X", "hvmm: --balloon: '12X' has an unknown size suffix 'X'"},
           {"--fault-around", "wide", "hvmm: --fault-around: 'wide' is not a size"},
           {"--console-log-max", "-1", "hvmm: --console-log-max: '-1' is not a size"},
           {"--dirty-tracking", "often", "hvmm: --dirty-tracking often: must be log or ring"}}) {
    ClientRun r = run(daemon, {"vm", "create", "web", flag, value});
    EXPECT_EQ(r.status, 120) << flag;
    EXPECT_EQ(r.err.rfind(message, 0), 0u) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(daemon.request_count(), 0u);
}

// start, stop and delete carry their flags; durations become milliseconds.
TEST(ClientVm, StartStopDeleteCarryTheirFlags) {
  FakeDaemon daemon;
  v1::StartVmResponse started;
  started.mutable_vm()->set_name("web");
  started.mutable_vm()->set_state(v1::VM_STATE_RUNNING);
  started.mutable_vm()->set_vmid(7);
  started.mutable_vm()->set_pid(99);
  daemon.respond("Vm.Start", started);
  ClientRun start = run(daemon, {"vm", "start", "web", "--wait"});
  ASSERT_EQ(start.status, 0) << start.err;
  EXPECT_EQ(start.out, "web: running (vmid 7, pid 99)\n");
  auto starts = daemon.requests<v1::StartVmRequest>("Vm.Start");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].name(), "web");
  EXPECT_TRUE(starts[0].wait());

  ASSERT_EQ(run(daemon, {"vm", "stop", "web", "--grace", "3s"}).status, 0);
  ASSERT_EQ(run(daemon, {"vm", "stop", "web", "--force"}).status, 0);
  ASSERT_EQ(run(daemon, {"vm", "stop", "web"}).status, 0);
  auto stops = daemon.requests<v1::StopVmRequest>("Vm.Stop");
  ASSERT_EQ(stops.size(), 3u);
  EXPECT_EQ(stops[0].grace_ms(), 3000u);
  EXPECT_FALSE(stops[0].force());
  EXPECT_TRUE(stops[1].force());
  EXPECT_EQ(stops[2].grace_ms(), 0u) << "the daemon's 10 s";
  EXPECT_EQ(run(daemon, {"vm", "stop", "web", "--grace", "soon"}).status, 120);

  ClientRun deleted = run(daemon, {"vm", "delete", "web", "--force"});
  ASSERT_EQ(deleted.status, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "deleted web\n");
  auto deletes = daemon.requests<v1::DeleteVmRequest>("Vm.Delete");
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_TRUE(deletes[0].force());
}

// `vm list` is a table for people and the response's JSON for scripts.
TEST(ClientVm, ListTableAndJson) {
  FakeDaemon daemon;
  daemon.respond("Vm.List", two_vms());
  ClientRun table = run(daemon, {"vm", "list"});
  ASSERT_EQ(table.status, 0) << table.err;
  auto rows = lines(table.out);
  ASSERT_EQ(rows.size(), 3u) << table.out;
  EXPECT_EQ(rows[0].rfind("NAME", 0), 0u);
  for (const char* column : {"STATE", "VMID", "PID", "MEMORY", "RSS", "BALLOON"}) {
    EXPECT_NE(rows[0].find(column), std::string::npos) << column;
  }
  EXPECT_EQ(rows[1].rfind("web  ", 0), 0u) << rows[1];
  for (const char* cell : {"running", "3", "4242", "256 MiB", "100 MiB", "32.0 MiB / 64.0 MiB"}) {
    EXPECT_NE(rows[1].find(cell), std::string::npos) << cell << " in " << rows[1];
  }
  EXPECT_NE(rows[2].find("stopped"), std::string::npos) << rows[2];
  EXPECT_EQ(rows[1].find("running"), rows[2].find("stopped")) << "aligned columns";

  ClientRun json = run(daemon, {"vm", "list", "--json"});
  ASSERT_EQ(json.status, 0) << json.err;
  ASSERT_EQ(lines(json.out).size(), 1u) << "one object on one line";
  EXPECT_TRUE(same(from_json<v1::ListVmsResponse>(json.out), two_vms()));
  EXPECT_NE(json.out.find("\"vmid\":3"), std::string::npos) << json.out;
}

// `vm get` prints every field worth a line, the exit and its last console lines included.
TEST(ClientVm, GetPrintsTheVm) {
  FakeDaemon daemon;
  v1::GetVmResponse got;
  *got.mutable_vm() = two_vms().vms(1);
  daemon.respond("Vm.Get", got);
  ClientRun r = run(daemon, {"vm", "get", "db"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(daemon.requests<v1::GetVmRequest>("Vm.Get").at(0).name(), "db");
  for (const char* text : {"name: db\n", "state: stopped\n", "kernel: (bundled)\n",
                           "exit: exit status 0: guest exited with status 0", "  | bye\n"}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << text << " in\n" << r.out;
  }
  ClientRun json = run(daemon, {"--json", "vm", "get", "db"});
  EXPECT_TRUE(same(from_json<v1::GetVmResponse>(json.out), got));
}

// `vm console` prints the lines as they come; missed lines are said on stderr.
TEST(ClientVm, ConsoleStreamsLines) {
  FakeDaemon daemon;
  v1::ConsoleLine line;
  line.set_line("hello");
  daemon.stream("Vm.StreamConsole", line);
  line.set_line("world");
  line.set_dropped_before(5);
  daemon.stream("Vm.StreamConsole", line);
  ClientRun r = run(daemon, {"vm", "console", "web", "--follow", "--history"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "hello\nworld\n");
  EXPECT_NE(r.err.find("5 console lines dropped"), std::string::npos) << r.err;
  auto requests = daemon.requests<v1::StreamConsoleRequest>("Vm.StreamConsole");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(requests[0].follow());
  EXPECT_TRUE(requests[0].history());
  ClientRun json = run(daemon, {"vm", "console", "web", "--json"});
  auto objects = lines(json.out);
  ASSERT_EQ(objects.size(), 2u) << json.out;
  EXPECT_EQ(from_json<v1::ConsoleLine>(objects[1]).line(), "world");
  EXPECT_FALSE(daemon.requests<v1::StreamConsoleRequest>("Vm.StreamConsole").at(1).follow());
}

// A stream that the daemon ends with an error exits with that error's status.
TEST(ClientVm, ConsoleStreamErrorIsTheExitStatus) {
  FakeDaemon daemon;
  daemon.fail("Vm.StreamConsole",
              grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "web: the VM is stopped"));
  ClientRun r = run(daemon, {"vm", "console", "web"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "hvmm: web: the VM is stopped\n");
}

}  // namespace
}  // namespace hvmm::client::testing
