// First touch of guest RAM by a ring-3 workload of the guest kernel: hvmm's userfaultfd
// handler (adaptive fault-around) against the host kernel filling the memfd's holes itself
// (`--userfaultfd off`), side by side in one run.
//
// Each case boots the bundled guest kernel with 256 MiB under `hvmm run` and runs one
// built-in workload: touch_seq (every page of the area in address order) or touch_random
// (4 accesses per page of the area at random, so ~98% of its pages are touched, in random
// order). The guest prints the workload's time (guest TSC) and its demand faults, one per
// page it touched; the figure is guest time per touched page. The guest's own page fault is
// in both figures, so the ratio understates the handler's difference: it is what a guest
// sees. Peak RSS is wait4's ru_maxrss minus that of the same VM with a one-page workload, per
// touched byte (the aim is that random touches do not inflate RSS). Cases alternate, so
// machine noise hits both modes alike; medians are reported.
//
// Usage: vmm_guest_first_touch [--runs N] [--size MIB]. Exit status: 0 measured, 1 a VM
// failed or a figure is missing, 77 without a usable /dev/kvm ("SKIP: reason").
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace {

constexpr int kSkip = 77;
constexpr double kAimSequential = 0.8;  // hvmm per page / kernel per page
constexpr double kAimRandom = 1.5;
constexpr double kAimRandomRss = 1.25;  // RSS growth / touched bytes

// What one VM run reported.
struct Sample {
  int status = -1;
  double peak_rss_bytes = 0;
  std::optional<double> us;      // the workload's guest time
  std::optional<double> faults;  // its demand faults (pages touched)
  std::string output;
};

// Run `args` with stdout captured (stderr to /dev/null) and measured by wait4.
Sample run_vm(const std::vector<std::string>& args) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0)
    return {};
  std::vector<std::string> storage = args;
  std::vector<char*> argv;
  for (std::string& arg : storage)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(pipe_fds[1], 1);
    dup2(null, 2);
    close(pipe_fds[0]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  Sample sample;
  char buffer[4096];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    sample.output.append(buffer, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  int wstatus = 0;
  rusage usage{};
  wait4(pid, &wstatus, 0, &usage);
  sample.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  sample.peak_rss_bytes = static_cast<double>(usage.ru_maxrss) * 1024.0;
  // "workload NAME: ok exit 0, K KiB, F faults (...), S syscalls, T us"
  const size_t at = sample.output.find("workload touch_");
  if (at == std::string::npos)
    return sample;
  const std::string line = sample.output.substr(at, sample.output.find('\n', at) - at);
  const size_t ok = line.find(": ok exit 0, ");
  const size_t last = line.rfind(", ");
  unsigned long kib = 0, faults = 0, us = 0;
  if (ok != std::string::npos &&
      std::sscanf(line.c_str() + ok + 13, "%lu KiB, %lu faults", &kib, &faults) == 2 &&
      std::sscanf(line.c_str() + last + 2, "%lu us", &us) == 1) {
    sample.faults = static_cast<double>(faults);
    sample.us = static_cast<double>(us);
  }
  return sample;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? NAN : values[values.size() / 2];
}

// The measurements of one (workload, mode) case over every run.
struct Case {
  std::string workload;  // touch_seq or touch_random
  bool userfaultfd;
  std::vector<double> ns_per_page;
  std::vector<double> peak_rss;
  std::vector<double> touched_bytes;
};

// Why /dev/kvm cannot be used, or "".
std::string kvm_unusable() {
  struct stat st {};
  if (stat("/dev/kvm", &st) != 0 || !S_ISCHR(st.st_mode))
    return "/dev/kvm is missing";
  if (access("/dev/kvm", R_OK | W_OK) != 0)
    return "/dev/kvm is not readable and writable";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  unsigned size_mib = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--runs") == 0)
      runs = std::max(1, std::atoi(argv[i + 1]));
    else if (std::strcmp(argv[i], "--size") == 0)
      size_mib = static_cast<unsigned>(std::max(1, std::atoi(argv[i + 1])));
  }
  if (std::string why = kvm_unusable(); !why.empty()) {
    fmt::print("SKIP: {}\n", why);
    return kSkip;
  }
  const std::string hvmm = HVMM_BINARY;
  auto vm_args = [&](const std::string& workload, bool userfaultfd) {
    return std::vector<std::string>{hvmm,
                                    "run",
                                    "--memory",
                                    "256M",
                                    "--userfaultfd",
                                    userfaultfd ? "on" : "off",
                                    "--cmdline",
                                    "workload=" + workload};
  };
  std::vector<Case> cases;
  for (const char* workload : {"touch_seq", "touch_random"})
    for (bool userfaultfd : {false, true})
      cases.push_back(Case{workload, userfaultfd, {}, {}, {}});
  std::vector<double> baseline[2];  // peak RSS of a one-page workload, by mode
  for (int run = 0; run < runs; ++run) {
    for (bool userfaultfd : {false, true}) {
      Sample base = run_vm(vm_args("touch_seq:4K", userfaultfd));
      if (base.status != 0 || !base.us) {
        fmt::print("FAIL: the baseline VM (userfaultfd {}) exited {}:\n{}\n",
                   userfaultfd ? "on" : "off", base.status, base.output);
        return 1;
      }
      baseline[userfaultfd].push_back(base.peak_rss_bytes);
    }
    for (Case& c : cases) {
      Sample sample = run_vm(vm_args(fmt::format("{}:{}M", c.workload, size_mib), c.userfaultfd));
      if (sample.status != 0 || !sample.us || !sample.faults || *sample.faults == 0) {
        fmt::print("FAIL: {} (userfaultfd {}) exited {} without its figures:\n{}\n", c.workload,
                   c.userfaultfd ? "on" : "off", sample.status, sample.output);
        return 1;
      }
      c.ns_per_page.push_back(*sample.us * 1000.0 / *sample.faults);
      c.peak_rss.push_back(sample.peak_rss_bytes);
      c.touched_bytes.push_back(*sample.faults * 4096.0);
    }
  }
  fmt::print("first touch of {} MiB by a ring-3 guest workload, 256 MiB guest, {} runs\n", size_mib,
             runs);
  fmt::print("{:<14}{:<12}{:>14}{:>16}\n", "workload", "resolver", "ns/page med", "RSS/touched");
  double ratio[2] = {NAN, NAN};
  double rss_ratio[2] = {NAN, NAN};
  for (size_t i = 0; i < cases.size(); i += 2) {
    const Case& kernel = cases[i];
    const Case& handler = cases[i + 1];
    for (const Case* c : {&kernel, &handler}) {
      const double growth = median(c->peak_rss) - median(baseline[c->userfaultfd]);
      fmt::print("{:<14}{:<12}{:>14.0f}{:>16.3f}\n", c->workload,
                 c->userfaultfd ? "hvmm" : "kernel", median(c->ns_per_page),
                 growth / median(c->touched_bytes));
    }
    const size_t k = i / 2;
    ratio[k] = median(handler.ns_per_page) / median(kernel.ns_per_page);
    rss_ratio[k] = (median(handler.peak_rss) - median(baseline[1])) / median(handler.touched_bytes);
  }
  const bool finite = std::isfinite(ratio[0]) && std::isfinite(ratio[1]) &&
                      std::isfinite(rss_ratio[0]) && std::isfinite(rss_ratio[1]);
  fmt::print(
      "ratio hvmm/kernel per page: sequential {:.3f} (aim <= {}: {}), random {:.3f} "
      "(aim <= {}: {}); random RSS/touched {:.3f} (aim <= {}: {})\n",
      ratio[0], kAimSequential, ratio[0] <= kAimSequential ? "met" : "not met", ratio[1],
      kAimRandom, ratio[1] <= kAimRandom ? "met" : "not met", rss_ratio[1], kAimRandomRss,
      rss_ratio[1] <= kAimRandomRss ? "met" : "not met");
  if (!finite) {
    fmt::print("FAIL: a figure is missing\n");
    return 1;
  }
  return 0;
}
