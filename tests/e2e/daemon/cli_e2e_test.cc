// End-to-end: the same flows through the CLI a user types, `hvmm ... --socket S --json`
// (hvmm forwards client commands to hvmm-client), against the real hvmmd: create, start,
// list, get, balloon set with wait, stats, stage2 dump, tlb shootdown of both stages, stop,
// delete; notifier and faults watches printing events; exit statuses of failed calls.
#include <signal.h>

#include <gtest/gtest.h>

#include <thread>

#include "cli.h"
#include "daemon_test.h"
#include "guest_vms.h"
#include "json_fields.h"

namespace hvmm::e2e {
namespace {

using google::protobuf::Value;
using std::chrono::seconds;

class Cli : public DaemonTest {
 protected:
  // Run `hvmm args... --socket S --json`, expect exit 0 and return its JSON objects.
  std::vector<Value> json_of(const std::vector<std::string>& args) {
    auto result = run_cli(daemon().socket(), args);
    EXPECT_TRUE(result.ok()) << result.error().message;
    if (!result.ok()) {
      return {};
    }
    std::string command;
    for (const std::string& arg : args) {
      command += " " + arg;
    }
    EXPECT_EQ(result->status.code, 0)
        << "hvmm" << command << ": " << result->status.describe() << "\n"
        << result->output;
    std::vector<Value> values;
    for (const std::string& line : json_lines(result->output)) {
      auto value = parse_json_value(line);
      EXPECT_TRUE(value.ok()) << "hvmm" << command << ": " << value.error().message;
      if (value.ok()) {
        values.push_back(std::move(*value));
      }
    }
    EXPECT_FALSE(values.empty()) << "hvmm" << command << " printed no JSON:\n" << result->output;
    return values;
  }
};

// The last value of `values` (a command's final answer), or an empty one.
Value last(const std::vector<Value>& values) {
  return values.empty() ? Value() : values.back();
}

// A VM's whole life and its memory through `hvmm`, checked against what the CLI prints.
TEST_F(Cli, VmLifecycleAndMemoryThroughTheCli) {
  auto created = last(json_of({"vm", "create", "cli-vm", "--memory", "256M"}));
  EXPECT_EQ(find_string(created, "name"), "cli-vm");
  EXPECT_EQ(find_string(created, "state"), "VM_STATE_CREATED");

  auto started = last(json_of({"vm", "start", "cli-vm", "--wait"}));
  EXPECT_EQ(find_string(started, "state"), "VM_STATE_RUNNING");
  EXPECT_GT(find_uint(started, "vmid").value_or(0), 0u);

  bool listed = false;
  for (const Value& value : json_of({"vm", "list"})) {
    for (const Value* name : find_fields(value, "name")) {
      listed = listed || name->string_value() == "cli-vm";
    }
  }
  EXPECT_TRUE(listed) << "vm list does not show cli-vm";
  auto got = last(json_of({"vm", "get", "cli-vm"}));
  EXPECT_EQ(find_string(got, "state"), "VM_STATE_RUNNING");
  EXPECT_EQ(find_uint(got, "memory_bytes"), 256 * kMiB);

  auto balloon = last(json_of({"balloon", "set", "cli-vm", "64M", "--wait", "150s"}));
  EXPECT_EQ(find_uint(balloon, "target_bytes"), 64 * kMiB);
  EXPECT_GE(find_uint(balloon, "actual_bytes").value_or(0), 64 * kMiB);

  auto stats = last(json_of({"stats", "cli-vm"}));
  EXPECT_GE(find_uint(stats, "actual_bytes").value_or(0), 64 * kMiB);
  EXPECT_GT(find_uint(stats, "rss_bytes").value_or(0), 0u);
  EXPECT_GE(find_uint(stats, "ballooned").value_or(0), 64 * kMiB / kPage);

  uint64_t ballooned = 0;
  uint64_t covered = 0;
  for (const Value& page : json_of({"stage2", "dump", "cli-vm", "--page-size", "8"})) {
    for (const Value* mapping : objects_with(page, "range")) {
      if (find_string(*mapping, "name")) {
        continue;  // a device region (the first page lists the MMIO windows), not a mapping
      }
      const uint64_t size = find_uint(*mapping, "size").value_or(0);
      covered += size;
      if (find_string(*mapping, "backing") == "BACKING_BALLOONED") {
        ballooned += size;
      }
    }
  }
  EXPECT_EQ(covered, 256 * kMiB) << "the dump's pages cover guest RAM";
  EXPECT_GE(ballooned, 64 * kMiB);

  auto stage2 = last(json_of({"tlb", "shootdown", "cli-vm", "--stage", "2"}));
  EXPECT_GT(find_uint(stage2, "latency_ns").value_or(0), 0u);
  EXPECT_TRUE(find_string(stage2, "mechanism").has_value());
  auto stage1 = last(json_of({"tlb", "shootdown", "cli-vm", "--stage", "1", "--scope", "kernel"}));
  EXPECT_GT(find_uint(stage1, "latency_ns").value_or(0), 0u);
  EXPECT_GE(find_uint(stage1, "cpus").value_or(0), 1u);

  json_of({"vm", "stop", "cli-vm", "--grace", "60s"});
  auto stopped = wait_for_vm(
      api(), "cli-vm", [](const v1::Vm& vm) { return vm.state() == v1::VM_STATE_STOPPED; },
      seconds(120));
  ASSERT_TRUE(stopped.ok()) << stopped.error().message;
  auto deleted = run_cli(daemon().socket(), {"vm", "delete", "cli-vm"});
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ(deleted->status.code, 0) << deleted->output;

  // A failed call: the daemon's message is printed and the status is not 0.
  auto missing = run_cli(daemon().socket(), {"vm", "get", "cli-vm"});
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_NE(missing->status.code.value_or(0), 0) << missing->output;
  EXPECT_NE(missing->output.find("cli-vm"), std::string::npos) << missing->output;
  EXPECT_TRUE(daemon().running());
}

// `hvmm notifier watch` prints the balloon's invalidations and `hvmm faults watch` the
// record of an unbacked probe, one JSON object a line, while they run.
TEST_F(Cli, NotifierAndFaultsWatchPrintEvents) {
  auto vm = start_guest_vm(api(), "watched", guest_spec(128 * kMiB));
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  const std::string notifier_log = daemon().directory() + "/notifier-watch.out";
  const std::string faults_log = daemon().directory() + "/faults-watch.out";
  const Binaries& paths = binaries();
  auto notifier = Subprocess::spawn(
      {paths.hvmm, "notifier", "watch", "watched", "--socket", daemon().socket(), "--json"},
      notifier_log);
  ASSERT_TRUE(notifier.ok()) << notifier.error().message;
  auto faults = Subprocess::spawn(
      {paths.hvmm, "faults", "watch", "watched", "--socket", daemon().socket(), "--json"},
      faults_log);
  ASSERT_TRUE(faults.ok()) << faults.error().message;

  // Wait until the notifier watch is subscribed, then move the balloon.
  v1::ListSubscriptionsRequest list;
  list.set_name("watched");
  bool subscribed = false;
  for (int i = 0; i < 600 && !subscribed; ++i) {
    auto subscriptions = call(*api().notifier, &v1::NotifierService::Stub::ListSubscriptions, list);
    ASSERT_TRUE(subscriptions.ok()) << describe(subscriptions.status);
    for (const v1::Subscription& subscription : subscriptions.response.subscriptions()) {
      subscribed = subscribed || subscription.owner() == "watch";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(subscribed) << "hvmm notifier watch never subscribed:\n"
                          << read_text_file(notifier_log);
  v1::SetBalloonTargetRequest balloon;
  balloon.set_name("watched");
  balloon.set_target_bytes(32 * kMiB);
  balloon.set_wait_ms(150000);
  auto reached =
      call(*api().memory, &v1::MemoryService::Stub::SetBalloonTarget, balloon, seconds(160));
  ASSERT_TRUE(reached.ok()) << describe(reached.status);

  // Probe the MMIO hole until the faults watch printed it (it may subscribe after a probe).
  constexpr uint64_t kUnbackedIpa = uint64_t{3} << 30;
  auto printed = [](const std::string& file, const std::string& key, const std::string& want) {
    for (const std::string& line : json_lines(read_text_file(file))) {
      auto value = parse_json_value(line);
      if (value.ok() && find_string(*value, key) == want) {
        return true;
      }
    }
    return false;
  };
  bool fault_seen = false;
  for (int i = 0; i < 60 && !fault_seen; ++i) {
    v1::ProbeRequest probe;
    probe.set_name("watched");
    probe.set_ipa(kUnbackedIpa);
    auto probed = call(*api().guest, &v1::GuestService::Stub::Probe, probe);
    ASSERT_TRUE(probed.ok()) << describe(probed.status);
    std::this_thread::sleep_for(seconds(1));
    fault_seen = printed(faults_log, "ipa", std::to_string(kUnbackedIpa));
  }
  EXPECT_TRUE(fault_seen) << "hvmm faults watch printed:\n" << read_text_file(faults_log);
  bool balloon_seen = false;
  for (int i = 0; i < 100 && !balloon_seen; ++i) {
    balloon_seen = printed(notifier_log, "reason", "CHANGE_REASON_BALLOON");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(balloon_seen) << "hvmm notifier watch printed:\n" << read_text_file(notifier_log);
  EXPECT_FALSE(notifier->poll().has_value()) << "the watch ended early";
  notifier->signal(SIGINT);
  faults->signal(SIGINT);
  EXPECT_TRUE(notifier->wait(seconds(10)).has_value()) << "hvmm notifier watch ignores SIGINT";
  EXPECT_TRUE(faults->wait(seconds(10)).has_value()) << "hvmm faults watch ignores SIGINT";
}

// `hvmm --version` names this build's version; `hvmm-client vm list` answers like `hvmm`.
TEST_F(Cli, VersionAndTheClientBinaryItself) {
  auto version = run_command({binaries().hvmm, "--version"}, seconds(60));
  ASSERT_TRUE(version.ok()) << version.error().message;
  EXPECT_EQ(version->status.code, 0) << version->output;
  EXPECT_NE(version->output.find(HVMM_E2E_VERSION), std::string::npos) << version->output;
  CliOptions direct;
  direct.binary = CliBinary::kHvmmClient;
  auto list = run_cli(daemon().socket(), {"vm", "list"}, direct);
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(list->status.code, 0) << list->output;
}

}  // namespace
}  // namespace hvmm::e2e
