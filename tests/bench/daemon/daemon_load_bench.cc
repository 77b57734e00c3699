// Load on hvmmd: 32 concurrent clients (one connection each) issue GetMemoryStats and List
// against 2 running VMs for a while, then 200 Create/Start/Delete cycles of a VM that runs. Prints
// the requests served, their latency (p50, p99, max) against the aim (p99 under 5 ms), the errors,
// and the daemon's descriptors and RSS before and after the cycles.
//
// Fails (exit 1) on any error, or when the cycles leave the daemon with more descriptors or
// more than kRssAllowanceMiB more RSS. Exit 77: real VMs asked for but KVM absent (skip).
// The VM processes are the real hvmm-vm when it is built and /dev/kvm opens (the nested-KVM
// stage runs it that way), else the stand-in hvmm-fake-vm; --vm-process says which.
// Knobs (flags, or the environment for CI): --seconds / HVMM_LOAD_SECONDS (30),
// --cycles / HVMM_LOAD_CYCLES (200), --clients (32).
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "daemon_harness.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace {

namespace v1 = hvmm::v1;
using hvmm::testing::DaemonHarness;
using Clock = std::chrono::steady_clock;

constexpr int kSkip = 77;
constexpr double kAimP99Ms = 5.0;
constexpr double kRssAllowanceMiB = 4.0;
constexpr int kFdAllowance = 0;

struct Settings {
  double seconds = 30;
  int cycles = 200;
  int clients = 32;
  std::string vm_process;  // "fake", "real" or a path; empty: real when usable
};

double env_or(const char* name, double fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atof(value) : fallback;
}

Settings parse(int argc, char** argv) {
  Settings settings;
  settings.seconds = env_or("HVMM_LOAD_SECONDS", settings.seconds);
  settings.cycles = static_cast<int>(env_or("HVMM_LOAD_CYCLES", settings.cycles));
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--seconds") {
      settings.seconds = std::atof(argv[i + 1]);
    } else if (flag == "--cycles") {
      settings.cycles = std::atoi(argv[i + 1]);
    } else if (flag == "--clients") {
      settings.clients = std::atoi(argv[i + 1]);
    } else if (flag == "--vm-process") {
      settings.vm_process = argv[i + 1];
    }
  }
  return settings;
}

bool kvm_usable() {
  return hvmm::testing::kvm_unavailable_reason().empty();
}

std::unique_ptr<grpc::ClientContext> context(std::chrono::milliseconds timeout) {
  auto out = std::make_unique<grpc::ClientContext>();
  out->set_deadline(std::chrono::system_clock::now() + timeout);
  return out;
}

// The daemon's open descriptors and VmRSS (MiB).
int fd_count(pid_t pid) {
  int count = 0;
  if (DIR* dir = ::opendir(fmt::format("/proc/{}/fd", pid).c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      count += entry->d_name[0] != '.' ? 1 : 0;
    }
    ::closedir(dir);
  }
  return count;
}

double rss_mib(pid_t pid) {
  std::string status = hvmm::testing::slurp(fmt::format("/proc/{}/status", pid));
  size_t at = status.find("VmRSS:");
  return at == std::string::npos ? 0 : std::atof(status.c_str() + at + 6) / 1024.0;
}

struct Latencies {
  std::vector<double> get_ms;
  std::vector<double> list_ms;
  uint64_t errors = 0;
  uint64_t lists_without_figures = 0;
  std::string first_error;
};

// CPU time (user + system) of a process so far, in seconds.
double cpu_seconds(pid_t pid) {
  std::string stat = hvmm::testing::slurp(fmt::format("/proc/{}/stat", pid));
  size_t end = stat.rfind(')');
  if (end == std::string::npos) {
    return 0;
  }
  std::vector<std::string> fields;
  std::string field;
  for (char c : stat.substr(end + 2)) {
    if (c == ' ') {
      fields.push_back(field);
      field.clear();
    } else {
      field += c;
    }
  }
  // Fields 14 and 15 of stat(5) (utime, stime) are the 12th and 13th after the name.
  return fields.size() > 12 ? (std::atof(fields[11].c_str()) + std::atof(fields[12].c_str())) /
                                  static_cast<double>(::sysconf(_SC_CLK_TCK))
                            : 0;
}

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

// One client: alternate GetMemoryStats (of either VM) and List until `until`.
void client_loop(const std::string& socket, int index, Clock::time_point until, Latencies& out) {
  grpc::ChannelArguments arguments;
  arguments.SetInt("grpc.client_idle_timeout_ms", 1 << 30);
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  auto channel =
      grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), arguments);
  auto vms = v1::VmService::NewStub(channel);
  auto memory = v1::MemoryService::NewStub(channel);
  for (uint64_t n = index; Clock::now() < until; ++n) {
    auto started = Clock::now();
    grpc::Status status;
    if (n % 2 == 0) {
      v1::GetMemoryStatsRequest request;
      request.set_name(n % 4 == 0 ? "load-a" : "load-b");
      v1::GetMemoryStatsResponse response;
      status = memory->GetMemoryStats(context(std::chrono::seconds(10)).get(), request, &response);
      out.get_ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - started).count());
    } else {
      v1::ListVmsResponse response;
      status = vms->List(context(std::chrono::seconds(10)).get(), {}, &response);
      out.list_ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - started).count());
      for (const v1::Vm& vm : response.vms()) {
        out.lists_without_figures += vm.has_memory() ? 0 : 1;
      }
    }
    if (!status.ok()) {
      if (out.errors++ == 0) {
        out.first_error = status.error_message();
      }
    }
  }
}

v1::VmSpec load_spec(bool fake) {
  v1::VmSpec spec;
  spec.set_memory_bytes(uint64_t{64} << 20);
  (void)fake;
  return spec;
}

bool start_vm(v1::VmService::Stub& vms, const std::string& name, bool fake) {
  v1::CreateVmRequest create;
  create.set_name(name);
  *create.mutable_spec() = load_spec(fake);
  v1::CreateVmResponse created;
  if (!vms.Create(context(std::chrono::seconds(30)).get(), create, &created).ok()) {
    return false;
  }
  v1::StartVmRequest start;
  start.set_name(name);
  start.set_wait(true);
  v1::StartVmResponse started;
  grpc::Status status = vms.Start(context(std::chrono::seconds(120)).get(), start, &started);
  if (!status.ok() || started.vm().state() != v1::VM_STATE_RUNNING) {
    std::printf("FAIL: VM %s did not start: %s %s\n", name.c_str(), status.error_message().c_str(),
                started.vm().exit().reason().c_str());
    return false;
  }
  return true;
}

// One VM's whole life `cycles` times: Create, Start waiting until it runs (its VM process
// built the VM and leased a VMID), Delete(force); false on the first failure.
bool cycle_vms(v1::VmService::Stub& vms, int cycles, bool fake) {
  for (int i = 0; i < cycles; ++i) {
    v1::CreateVmRequest create;
    create.set_name("cycle");
    *create.mutable_spec() = load_spec(fake);
    v1::CreateVmResponse created;
    grpc::Status status = vms.Create(context(std::chrono::seconds(60)).get(), create, &created);
    v1::StartVmResponse started;
    if (status.ok()) {
      v1::StartVmRequest start;
      start.set_name("cycle");
      start.set_wait(true);
      status = vms.Start(context(std::chrono::seconds(60)).get(), start, &started);
    }
    if (status.ok() && started.vm().state() != v1::VM_STATE_RUNNING) {
      status = grpc::Status(grpc::StatusCode::INTERNAL,
                            "started VM is " + v1::VmState_Name(started.vm().state()));
    }
    v1::DeleteVmRequest remove;
    remove.set_name("cycle");
    remove.set_force(true);
    v1::DeleteVmResponse removed;
    grpc::Status deleted = vms.Delete(context(std::chrono::seconds(60)).get(), remove, &removed);
    if (!status.ok() || !deleted.ok()) {
      std::printf("FAIL: cycle %d: create/start: %s; delete: %s\n", i,
                  status.error_message().c_str(), deleted.error_message().c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings = parse(argc, argv);
  std::string real = HVMM_VM_BINARY;
  std::string vm_process;
  if (settings.vm_process == "fake" ||
      (settings.vm_process.empty() && (real.empty() || !kvm_usable()))) {
    vm_process = HVMM_FAKE_VM_BINARY;
  } else if (settings.vm_process.empty() || settings.vm_process == "real") {
    if (real.empty() || !kvm_usable()) {
      std::printf(
          "SKIP: real VMs asked for: %s\n",
          real.empty() ? "hvmm-vm is not built" : hvmm::testing::kvm_unavailable_reason().c_str());
      return kSkip;
    }
    vm_process = real;
  } else {
    vm_process = settings.vm_process;
  }
  bool fake = vm_process == HVMM_FAKE_VM_BINARY;
  DaemonHarness::Options options;
  const char* other = std::getenv("HVMM_TEST_HVMMD");  // another build's (a sanitizer build)
  options.hvmmd = other != nullptr && *other != '\0' ? other : HVMMD_BINARY;
  options.vm_process = vm_process;
  options.extra_config = "log-level = \"warn\"\n";
  DaemonHarness daemon(options);
  if (!daemon.start()) {
    std::printf("FAIL: hvmmd did not start:\n%s\n", daemon.log().c_str());
    return 1;
  }
  auto vms = v1::VmService::NewStub(daemon.channel());
  if (!start_vm(*vms, "load-a", fake) || !start_vm(*vms, "load-b", fake)) {
    return 1;
  }
  std::printf("daemon load: %d clients, %.0f s, 2 running VMs (%s)\n", settings.clients,
              settings.seconds, fake ? "stand-in VM processes" : "real VMs");
  double cpu_before = cpu_seconds(daemon.pid());
  auto load_started = Clock::now();
  std::vector<Latencies> per_client(static_cast<size_t>(settings.clients));
  std::vector<std::thread> threads;
  auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(settings.seconds));
  for (int i = 0; i < settings.clients; ++i) {
    threads.emplace_back(client_loop, daemon.socket(), i, until,
                         std::ref(per_client[static_cast<size_t>(i)]));
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  double daemon_cpu = cpu_seconds(daemon.pid()) - cpu_before;
  double wall = std::chrono::duration<double>(Clock::now() - load_started).count();
  Latencies all;
  for (Latencies& one : per_client) {
    all.get_ms.insert(all.get_ms.end(), one.get_ms.begin(), one.get_ms.end());
    all.list_ms.insert(all.list_ms.end(), one.list_ms.begin(), one.list_ms.end());
    all.errors += one.errors;
    all.lists_without_figures += one.lists_without_figures;
    if (all.first_error.empty()) {
      all.first_error = one.first_error;
    }
  }
  std::vector<double> both = all.get_ms;
  both.insert(both.end(), all.list_ms.begin(), all.list_ms.end());
  double p99 = percentile(both, 0.99);
  std::printf("  %-16s %9s %9s %9s %9s\n", "rpc", "requests", "p50_ms", "p99_ms", "max_ms");
  for (auto [name, values] : {std::pair{"GetMemoryStats", &all.get_ms},
                              std::pair{"List", &all.list_ms}, std::pair{"both", &both}}) {
    double p50 = percentile(*values, 0.5);  // sorts
    double p99_of = percentile(*values, 0.99);
    double max = values->empty() ? 0.0 : values->back();
    std::printf("  %-16s %9zu %9.3f %9.3f %9.3f\n", name, values->size(), p50, p99_of, max);
  }
  std::printf("  requests_per_s %.0f, errors %lu, List entries without figures %lu\n",
              static_cast<double>(both.size()) / settings.seconds,
              static_cast<unsigned long>(all.errors),
              static_cast<unsigned long>(all.lists_without_figures));
  std::printf("  daemon CPU %.1f us per request (%.0f%% of one core; List asks both VMs)\n",
              both.empty() ? 0.0 : daemon_cpu * 1e6 / static_cast<double>(both.size()),
              100.0 * daemon_cpu / wall);
  unsigned cores = std::thread::hardware_concurrency();
  double load = 0;
  if (FILE* file = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(file, "%lf", &load) != 1) {
      load = 0;
    }
    std::fclose(file);
  }
  std::printf("  machine: %u cores, load average %.1f (latency is this run's, on this machine)\n",
              cores, load);
  std::printf("  p99 %.3f ms against the aim of %.1f ms: ratio %.2f (%s)\n", p99, kAimP99Ms,
              p99 / kAimP99Ms, p99 <= kAimP99Ms ? "met" : "not met");
  bool failed = all.errors != 0 || both.empty();
  if (all.errors != 0) {
    std::printf("FAIL: %lu errors, the first: %s\n", static_cast<unsigned long>(all.errors),
                all.first_error.c_str());
  }

  // Create/Delete cycles: a few to warm up (gRPC and the allocator settle), then the count.
  if (!cycle_vms(*vms, 10, fake)) {
    return 1;
  }
  int fds_before = fd_count(daemon.pid());
  double rss_before = rss_mib(daemon.pid());
  auto cycles_started = Clock::now();
  if (!cycle_vms(*vms, settings.cycles, fake)) {
    return 1;
  }
  double cycle_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - cycles_started).count() /
      std::max(1, settings.cycles);
  int fds_after = fd_count(daemon.pid());
  double rss_after = rss_mib(daemon.pid());
  std::printf("create/start/delete: %d cycles of a running VM, %.2f ms each\n", settings.cycles,
              cycle_ms);
  std::printf("  daemon fds %d -> %d (allowance %d), RSS %.1f -> %.1f MiB (allowance %.1f MiB)\n",
              fds_before, fds_after, kFdAllowance, rss_before, rss_after, kRssAllowanceMiB);
  if (fds_after > fds_before + kFdAllowance) {
    std::printf("FAIL: the daemon's descriptors grew by %d\n", fds_after - fds_before);
    failed = true;
  }
  if (rss_after > rss_before + kRssAllowanceMiB) {
    std::printf("FAIL: the daemon's RSS grew by %.1f MiB\n", rss_after - rss_before);
    failed = true;
  }
  if (daemon.stop() != 0) {
    std::printf("FAIL: hvmmd did not exit 0 on SIGTERM\n");
    failed = true;
  }
  return failed ? 1 : 0;
}
