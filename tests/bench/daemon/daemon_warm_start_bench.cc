// Warm start against cold start, in one run: the real hvmmd with `warm-pool` and real VMs
// (hvmm-vm, the bundled guest kernel). Each of --rounds rounds makes one warm VM (Create with
// start of the pool's size, once the pool is full again) and one cold VM (another size), and
// times Create -> the guest's first instruction: from the client's clock just before Create
// to the VM's first_run_unix_ns (the boot vCPU's first KVM_RUN, CLOCK_REALTIME on the same
// host), then deletes it. It also runs `hvmm run --report-first-run` of the same kernel
// --rounds times: exec -> first KVM_RUN. Prints p50/p99 of each, their ratios and the aim
// (warm <= 2 ms). Exit 0 when every figure was measured, 1 when one is missing or a VM
// misbehaved, 77 without /dev/kvm (or without hvmm-vm). Knobs: --rounds (20), --memory-mib
// (the warm size, 128; the cold size is half of it).
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "child_process.h"
#include "daemon_harness.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace {

namespace v1 = hvmm::v1;
using hvmm::testing::DaemonHarness;
using Clock = std::chrono::steady_clock;

constexpr int kSkip = 77;
constexpr double kAimWarmMs = 2.0;
constexpr uint64_t kMiB = uint64_t{1} << 20;

struct Settings {
  int rounds = 20;
  uint64_t memory_mib = 128;
};

Settings parse(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--rounds") {
      settings.rounds = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--memory-mib") {
      settings.memory_mib = std::max(4, std::atoi(argv[i + 1]));
    }
  }
  return settings;
}

uint64_t realtime_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
}

std::unique_ptr<grpc::ClientContext> context(std::chrono::milliseconds timeout) {
  auto out = std::make_unique<grpc::ClientContext>();
  out->set_deadline(std::chrono::system_clock::now() + timeout);
  return out;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

struct Api {
  std::unique_ptr<v1::VmService::Stub> vms;
  std::unique_ptr<v1::DaemonService::Stub> daemon;
};

// Wait until the pool has `ready` processes (nested KVM builds them slowly).
bool wait_pool_full(Api& api, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    v1::GetDaemonInfoResponse info;
    if (api.daemon->GetDaemonInfo(context(std::chrono::seconds(10)).get(), {}, &info).ok() &&
        info.warm_pools_size() == 1 && info.warm_pools(0).ready() == info.warm_pools(0).target()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// One VM: Create with start, wait for its first run, delete it. Create -> first instruction
// in ms (client clock to the VM's report), whether it was warm, the daemon's own figure.
struct Sample {
  double create_to_first_run_ms = 0;
  double daemon_ms = 0;   // start_requested -> first_run, as the daemon reports it
  double started_ms = 0;  // start_requested -> the daemon got Started (the VM was built)
  bool warm = false;
};

std::optional<Sample> one_vm(Api& api, const std::string& name, uint64_t memory_bytes,
                             std::string& error) {
  v1::CreateVmRequest create;
  create.set_name(name);
  create.mutable_spec()->set_memory_bytes(memory_bytes);
  create.set_start(true);
  v1::CreateVmResponse created;
  const uint64_t asked = realtime_ns();
  grpc::Status status = api.vms->Create(context(std::chrono::seconds(60)).get(), create, &created);
  if (!status.ok()) {
    error = fmt::format("Create {}: {}", name, status.error_message());
    return std::nullopt;
  }
  std::optional<Sample> sample;
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    v1::GetVmRequest get;
    get.set_name(name);
    v1::GetVmResponse got;
    if (!api.vms->Get(context(std::chrono::seconds(10)).get(), get, &got).ok()) {
      continue;
    }
    const v1::Vm& vm = got.vm();
    if (vm.state() == v1::VM_STATE_FAILED || vm.state() == v1::VM_STATE_STOPPED) {
      error = fmt::format("{} ended before its first run: {}", name, vm.exit().reason());
      break;
    }
    if (vm.first_run_unix_ns() != 0) {
      const auto since_request = [&vm](uint64_t unix_ns) {
        return (static_cast<double>(unix_ns) - static_cast<double>(vm.start_requested_unix_ns())) /
               1e6;
      };
      sample = Sample{static_cast<double>(vm.first_run_unix_ns() - asked) / 1e6,
                      since_request(vm.first_run_unix_ns()), since_request(vm.started_unix_ns()),
                      vm.warm_start()};
      break;
    }
    // The figure is the VM's own timestamp: polling slowly loses no precision and leaves the
    // CPU to the VM being measured.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!sample && error.empty()) {
    error = name + ": no first run within 120 s";
  }
  v1::DeleteVmRequest remove;
  remove.set_name(name);
  remove.set_force(true);
  v1::DeleteVmResponse removed;
  if (!api.vms->Delete(context(std::chrono::seconds(120)).get(), remove, &removed).ok() &&
      error.empty()) {
    error = "Delete " + name + " failed";
    return std::nullopt;
  }
  return sample;
}

// `hvmm run` of the bundled kernel: exec -> the first KVM_RUN it reports, in ms.
std::optional<double> one_hvmm_run(uint64_t memory_bytes, std::string& error) {
  const uint64_t asked = realtime_ns();
  hvmm::testing::ChildProcess run({HVMM_BINARY, "run", "--memory",
                                   std::to_string(memory_bytes >> 20) + "M", "--report-first-run"},
                                  true);
  const std::string marker = "first KVM_RUN at unix_ns=";
  const bool seen = run.wait_for_output(marker, std::chrono::seconds(120));
  ::kill(run.pid(), SIGKILL);
  run.wait(std::chrono::seconds(30));
  const std::string out = run.stdout_so_far();
  const size_t at = out.find(marker);
  if (!seen || at == std::string::npos) {
    error = "hvmm run printed no first run: " + out.substr(0, 400);
    return std::nullopt;
  }
  const uint64_t first = std::strtoull(out.c_str() + at + marker.size(), nullptr, 10);
  return static_cast<double>(first - asked) / 1e6;
}

void print_row(const char* what, const std::vector<double>& values) {
  std::printf("  %-34s %6zu %10.3f %10.3f\n", what, values.size(), percentile(values, 0.5),
              percentile(values, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  const Settings settings = parse(argc, argv);
  const std::string vm_binary = HVMM_VM_BINARY;
  if (vm_binary.empty() || !hvmm::testing::kvm_unavailable_reason().empty()) {
    std::printf("bench check: SKIP: %s\n", vm_binary.empty()
                                               ? "hvmm-vm is not built"
                                               : hvmm::testing::kvm_unavailable_reason().c_str());
    return kSkip;
  }
  const uint64_t warm_bytes = settings.memory_mib * kMiB;
  const uint64_t cold_bytes = warm_bytes / 2;
  DaemonHarness::Options options;
  options.hvmmd = HVMMD_BINARY;
  options.vm_process = vm_binary;
  options.extra_config = "log-level = \"warn\"\n";
  options.extra_args = {"--warm-pool", fmt::format("{}M:1", settings.memory_mib)};
  DaemonHarness daemon(options);
  if (!daemon.start()) {
    std::printf("FAIL: hvmmd did not start:\n%s\n", daemon.log().c_str());
    return 1;
  }
  Api api{v1::VmService::NewStub(daemon.channel()), v1::DaemonService::NewStub(daemon.channel())};
  std::vector<double> warm, cold, run, warm_daemon, cold_daemon, warm_built, cold_built;
  std::string error;
  for (int round = 0; round < settings.rounds && error.empty(); ++round) {
    if (!wait_pool_full(api, std::chrono::seconds(120))) {
      error = "the warm pool did not refill within 120 s";
      break;
    }
    auto w = one_vm(api, fmt::format("warm-{}", round), warm_bytes, error);
    if (w && !w->warm) {
      error = "a Start of the pool's size was not warm";
    } else if (w) {
      warm.push_back(w->create_to_first_run_ms);
      warm_daemon.push_back(w->daemon_ms);
      warm_built.push_back(w->started_ms);
    }
    // Each measurement starts with the pool full and nothing building beside it.
    if (error.empty() && !wait_pool_full(api, std::chrono::seconds(120))) {
      error = "the warm pool did not refill within 120 s";
    }
    auto c = error.empty() ? one_vm(api, fmt::format("cold-{}", round), cold_bytes, error)
                           : std::nullopt;
    if (c && c->warm) {
      error = "a Start of another size was warm";
    } else if (c) {
      cold.push_back(c->create_to_first_run_ms);
      cold_daemon.push_back(c->daemon_ms);
      cold_built.push_back(c->started_ms);
    }
    auto r = error.empty() ? one_hvmm_run(cold_bytes, error) : std::nullopt;
    if (r) {
      run.push_back(*r);
    }
  }
  std::printf("warm start: %d rounds, warm %lu MiB (pool of 1), cold %lu MiB, the bundled kernel\n",
              settings.rounds, static_cast<unsigned long>(settings.memory_mib),
              static_cast<unsigned long>(cold_bytes >> 20));
  std::printf("  %-34s %6s %10s %10s\n", "create -> first instruction", "n", "p50_ms", "p99_ms");
  print_row("warm (Create, start)", warm);
  print_row("cold (Create, start)", cold);
  print_row("hvmm run (exec)", run);
  print_row("warm, daemon's figure", warm_daemon);
  print_row("cold, daemon's figure", cold_daemon);
  print_row("warm, daemon: request -> Started", warm_built);
  print_row("cold, daemon: request -> Started", cold_built);
  const double warm_p50 = percentile(warm, 0.5);
  const double cold_p50 = percentile(cold, 0.5);
  const double run_p50 = percentile(run, 0.5);
  std::printf("  ratio warm/cold p50 %.3f, warm/hvmm-run p50 %.3f, cold/hvmm-run p50 %.3f\n",
              cold_p50 > 0 ? warm_p50 / cold_p50 : 0.0, run_p50 > 0 ? warm_p50 / run_p50 : 0.0,
              run_p50 > 0 ? cold_p50 / run_p50 : 0.0);
  std::printf("  aim: warm p50 <= %.1f ms: %.3f ms (%s)\n", kAimWarmMs, warm_p50,
              warm_p50 <= kAimWarmMs ? "met" : "not met");
  const size_t want = static_cast<size_t>(settings.rounds);
  if (!error.empty() || warm.size() != want || cold.size() != want || run.size() != want) {
    std::printf("bench check: FAIL: %s\n", error.empty() ? "a figure is missing" : error.c_str());
    return 1;
  }
  std::printf("bench check: PASS (every figure measured)\n");
  return 0;
}
