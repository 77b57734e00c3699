// hvmmd's warm pool with the stand-in VM process: the pool fills to its target, a Start of a
// pool's shape takes a prepared process (warm) and the pool refills, other Starts are cold
// (a pool shape that cannot be served counts as missed), a pool process that dies is
// replaced without any VM failing, shutdown leaves no process behind, and bad `warm-pool`
// values exit 120 naming the key.
#include <dirent.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <sstream>

#include "daemon_client.h"

namespace hvmm::testing {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// The children of `parent` (from /proc/PID/stat's ppid), alive or not yet reaped.
std::set<pid_t> children_of(pid_t parent) {
  std::set<pid_t> children;
  DIR* proc = ::opendir("/proc");
  while (proc != nullptr) {
    dirent* entry = ::readdir(proc);
    if (entry == nullptr) {
      break;
    }
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) {
      continue;
    }
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t close = text.rfind(')');
    if (close == std::string::npos) {
      continue;
    }
    std::istringstream rest(text.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) {
      children.insert(pid);
    }
  }
  if (proc != nullptr) {
    ::closedir(proc);
  }
  return children;
}

class WarmPool : public ::testing::Test {
 protected:
  void start_daemon(const std::string& pools) {
    auto options = fake_daemon_options();
    options.extra_args = {"--warm-pool", pools};
    daemon_ = std::make_unique<DaemonHarness>(options);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
    client_ = std::make_unique<DaemonClient>(daemon_->channel());
  }

  v1::GetDaemonInfoResponse info() {
    v1::GetDaemonInfoResponse response;
    grpc::Status status = client_->daemon->GetDaemonInfo(client_->context().get(), {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Wait until every pool is full (ready == target, nothing building); the last info.
  v1::GetDaemonInfoResponse wait_until_full() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    v1::GetDaemonInfoResponse last;
    while (std::chrono::steady_clock::now() < deadline) {
      last = info();
      bool full = last.warm_pools_size() > 0;
      for (const auto& pool : last.warm_pools()) {
        full = full && pool.ready() == pool.target() && pool.building() == 0;
      }
      if (full) {
        return last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "the pool did not fill: " << last.DebugString() << daemon_->log();
    return last;
  }

  v1::Vm start_vm(const std::string& name, uint64_t memory_bytes, unsigned vcpus = 1,
                  const std::string& dirty_tracking = "") {
    v1::VmSpec spec;
    spec.set_memory_bytes(memory_bytes);
    spec.set_vcpus(vcpus);
    spec.set_dirty_tracking(dirty_tracking);
    grpc::Status created = client_->create(name, spec, false);
    EXPECT_TRUE(created.ok()) << created.error_message();
    v1::StartVmRequest request;
    request.set_name(name);
    request.set_wait(true);
    v1::StartVmResponse response;
    grpc::Status started = client_->vms->Start(client_->context().get(), request, &response);
    EXPECT_TRUE(started.ok()) << started.error_message();
    EXPECT_EQ(response.vm().state(), v1::VM_STATE_RUNNING) << response.vm().DebugString();
    return response.vm();
  }

  // The VM as Get reports it once its FirstRun arrived.
  v1::Vm wait_first_run(const std::string& name) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    v1::Vm vm;
    while (std::chrono::steady_clock::now() < deadline) {
      vm = client_->get(name);
      if (vm.first_run_unix_ns() != 0) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return vm;
  }

  std::unique_ptr<DaemonHarness> daemon_;
  std::unique_ptr<DaemonClient> client_;
};

// Two sizes (one with 2 vCPUs) fill to their targets; the ready processes are the daemon's
// children and their RSS is reported.
TEST_F(WarmPool, FillsToItsTarget) {
  start_daemon("64M:2,32M/2:1");
  v1::GetDaemonInfoResponse full = wait_until_full();
  ASSERT_EQ(full.warm_pools_size(), 2);
  EXPECT_EQ(full.warm_pools(0).memory_bytes(), 64 * kMiB);
  EXPECT_EQ(full.warm_pools(0).vcpus(), 1u);
  EXPECT_EQ(full.warm_pools(0).target(), 2u);
  EXPECT_EQ(full.warm_pools(1).memory_bytes(), 32 * kMiB);
  EXPECT_EQ(full.warm_pools(1).vcpus(), 2u);
  EXPECT_EQ(full.warm_pools(1).target(), 1u);
  EXPECT_GT(full.warm_pools(0).rss_bytes(), 0u);
  EXPECT_EQ(full.warm_pools(0).taken(), 0u);
  EXPECT_EQ(full.warm_pools(0).missed(), 0u);
  EXPECT_EQ(children_of(full.pid()).size(), 3u);
}

// A Start of the pool's shape takes a prepared process: warm, the process was one of the
// pool's, the guest's first run is after the request, and the pool refills to its target.
TEST_F(WarmPool, MatchingStartIsWarmAndThePoolRefills) {
  start_daemon("64M:2");
  v1::GetDaemonInfoResponse full = wait_until_full();
  const std::set<pid_t> pool = children_of(full.pid());
  ASSERT_EQ(pool.size(), 2u);
  v1::Vm vm = start_vm("warm", 64 * kMiB);
  EXPECT_TRUE(vm.warm_start()) << vm.DebugString();
  EXPECT_EQ(pool.count(vm.pid()), 1u) << "the VM runs in a pool process";
  v1::Vm ran = wait_first_run("warm");
  EXPECT_GT(ran.start_requested_unix_ns(), 0u);
  EXPECT_GE(ran.first_run_unix_ns(), ran.start_requested_unix_ns()) << ran.DebugString();
  v1::GetDaemonInfoResponse refilled = wait_until_full();
  EXPECT_EQ(refilled.warm_pools(0).taken(), 1u);
  EXPECT_EQ(refilled.warm_pools(0).missed(), 0u);
  EXPECT_EQ(children_of(full.pid()).size(), 3u) << "two ready and the VM";
  // The VM is an ordinary one: it stops, and a second Start of it is warm again.
  v1::StopVmRequest stop;
  stop.set_name("warm");
  v1::StopVmResponse stopped;
  ASSERT_TRUE(client_->vms->Stop(client_->context().get(), stop, &stopped).ok());
  EXPECT_EQ(stopped.vm().state(), v1::VM_STATE_STOPPED) << stopped.vm().DebugString();
  v1::StartVmRequest again;
  again.set_name("warm");
  again.set_wait(true);
  v1::StartVmResponse restarted;
  ASSERT_TRUE(client_->vms->Start(client_->context().get(), again, &restarted).ok());
  EXPECT_TRUE(restarted.vm().warm_start()) << restarted.vm().DebugString();
  EXPECT_EQ(wait_until_full().warm_pools(0).taken(), 2u);
}

// Another size is cold and touches no pool; the pool's size with dirty tracking (which a
// prepared VM cannot have) is cold and counted missed.
TEST_F(WarmPool, NonMatchingStartIsColdAndCountedMissed) {
  start_daemon("64M:1");
  wait_until_full();
  v1::Vm other = start_vm("other-size", 128 * kMiB);
  EXPECT_FALSE(other.warm_start()) << other.DebugString();
  v1::Vm two_vcpus = start_vm("other-vcpus", 64 * kMiB, 2);
  EXPECT_FALSE(two_vcpus.warm_start()) << two_vcpus.DebugString();
  v1::GetDaemonInfoResponse after = info();
  EXPECT_EQ(after.warm_pools(0).taken(), 0u);
  EXPECT_EQ(after.warm_pools(0).missed(), 0u);
  EXPECT_EQ(after.warm_pools(0).ready(), 1u);
  v1::Vm dirty = start_vm("dirty", 64 * kMiB, 1, "log");
  EXPECT_FALSE(dirty.warm_start()) << dirty.DebugString();
  after = info();
  EXPECT_EQ(after.warm_pools(0).missed(), 1u);
  EXPECT_EQ(after.warm_pools(0).taken(), 0u);
  EXPECT_EQ(after.warm_pools(0).ready(), 1u) << "the ready process was not used";
  EXPECT_NE(wait_first_run("other-size").first_run_unix_ns(), 0u);
}

// A pool process killed with SIGKILL is replaced (logged), and no VM is failed by it.
TEST_F(WarmPool, KilledPoolProcessIsReplaced) {
  start_daemon("64M:2");
  v1::GetDaemonInfoResponse full = wait_until_full();
  const std::set<pid_t> before = children_of(full.pid());
  ASSERT_EQ(before.size(), 2u);
  const pid_t victim = *before.begin();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::set<pid_t> after;
  while (std::chrono::steady_clock::now() < deadline) {
    after = children_of(full.pid());
    if (after.size() == 2 && after.count(victim) == 0 && info().warm_pools(0).ready() == 2) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(after.size(), 2u);
  EXPECT_EQ(after.count(victim), 0u) << "the killed process was reaped and replaced";
  EXPECT_NE(daemon_->log().find("replacing it"), std::string::npos) << daemon_->log();
  v1::ListVmsResponse list;
  ASSERT_TRUE(client_->list(&list).ok());
  EXPECT_EQ(list.vms_size(), 0) << "a pool process is no VM";
  EXPECT_TRUE(start_vm("after", 64 * kMiB).warm_start());
}

// SIGTERM of the daemon kills and reaps every pool process: none is left behind.
TEST_F(WarmPool, ShutdownLeavesNoProcessBehind) {
  start_daemon("64M:2,32M:1");
  v1::GetDaemonInfoResponse full = wait_until_full();
  start_vm("running", 64 * kMiB);
  wait_until_full();
  std::set<pid_t> processes = children_of(full.pid());
  ASSERT_EQ(processes.size(), 4u);  // three pool processes (one refilled) and the VM
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  for (pid_t pid : processes) {
    EXPECT_NE(::kill(pid, 0), 0) << "process " << pid << " outlived the daemon";
  }
}

struct BadPool {
  const char* text;
  const char* named;  // what the message must quote besides the key
};

// Bad `warm-pool` values, as a flag and in the file, exit 120 naming the key.
TEST(WarmPoolConfig, BadValuesExit120NamingTheKey) {
  const std::vector<BadPool> cases = {
      {"64X:1", "64X"},       {"64M", "SIZE"},          {"64M:0", "count"},
      {"64M:65", "count"},    {"1M:1", "memory_bytes"}, {"64M/0:1", "vcpus"},
      {"64M/256:1", "vcpus"}, {"64M:1,64M:2", "twice"}, {"64M:1,,32M:1", "empty"},
      {"64M:x", "count"},
  };
  for (const BadPool& bad : cases) {
    for (bool in_file : {false, true}) {
      auto options = fake_daemon_options();
      if (in_file) {
        options.extra_config = std::string("warm-pool = \"") + bad.text + "\"\n";
      } else {
        options.extra_args = {"--warm-pool", bad.text};
      }
      DaemonHarness daemon(options);
      EXPECT_FALSE(daemon.start(std::chrono::seconds(5))) << bad.text;
      EXPECT_EQ(daemon.stop(), 120) << bad.text;
      EXPECT_NE(daemon.log().find("warm-pool"), std::string::npos) << bad.text << daemon.log();
      EXPECT_NE(daemon.log().find(bad.named), std::string::npos) << bad.text << daemon.log();
    }
  }
}

}  // namespace
}  // namespace hvmm::testing
