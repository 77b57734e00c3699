// Boot-to-exit benchmark: `hvmm run` versus `qemu-system-x86_64 -M microvm`, same guest.
//
// Each VMM boots the minimal PVH guest N times (alternating, so machine noise hits both
// alike) with 128 MiB of RAM; every run is a fork/exec timed from fork to wait4, and its
// peak RSS is wait4's ru_maxrss. Prints per-VMM median/min wall time and peak RSS, and the
// hvmm/QEMU ratios, against the aims (<= 1/5 of QEMU's time, <= 8 MiB peak RSS).
// Exit status: 0 measured, 1 a VMM misbehaved (wrong exit status) or a figure is missing, 77
// KVM or QEMU missing (printed as "SKIP: reason"; ctest reports it as skipped, not passed).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace {

constexpr int kSkip = 77;
constexpr double kAimTimeRatio = 0.2;
constexpr double kAimRssMiB = 8.0;

// One measured run.
struct Sample {
  double wall_ms;
  double peak_rss_mib;
  int status;
};

// Median and minimum of a list of values.
struct Summary {
  double median;
  double min;
};

Summary summarize(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return Summary{values[values.size() / 2], values.front()};
}

// Fork/exec `argv` with stdio on /dev/null, and measure it with wait4.
Sample run_once(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::vector<std::string> storage = args;
  for (std::string& arg : storage) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int wstatus = 0;
  rusage usage{};
  wait4(pid, &wstatus, 0, &usage);
  auto end = std::chrono::steady_clock::now();
  return Sample{std::chrono::duration<double, std::milli>(end - start).count(),
                static_cast<double>(usage.ru_maxrss) / 1024.0,
                WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus)};
}

// True when `program` is found on PATH.
bool on_path(const std::string& program) {
  std::string command = "command -v " + program + " >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

// Print one VMM's line of the table.
void print_row(const char* name, const Summary& wall, const Summary& rss) {
  fmt::print("{:<8} {:>12.2f} {:>12.2f} {:>16.2f} {:>16.2f}\n", name, wall.median, wall.min,
             rss.median, rss.min);
}

}  // namespace

// Parse --runs N / --guest ELF / --memory SIZE, measure both VMMs alternately, report.
int main(int argc, char** argv) {
  int runs = 20;
  std::string guest = HVMM_BENCH_GUEST;
  std::string memory = "128M";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--runs") {
      runs = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--guest") {
      guest = argv[i + 1];
    } else if (flag == "--memory") {
      memory = argv[i + 1];
    }
  }
  if (access("/dev/kvm", R_OK | W_OK) != 0) {
    fmt::print("SKIP: /dev/kvm is not accessible: {}\n", std::strerror(errno));
    return kSkip;
  }
  if (!on_path("qemu-system-x86_64")) {
    fmt::print("SKIP: qemu-system-x86_64 not found (deploy/install-deps.sh --bench)\n");
    return kSkip;
  }
  std::vector<std::string> hvmm = {HVMM_BINARY, "run", "--kernel", guest, "--memory", memory};
  std::vector<std::string> qemu = {"qemu-system-x86_64",
                                   "-M",
                                   "microvm",
                                   "-accel",
                                   "kvm",
                                   "-cpu",
                                   "host,-arch-capabilities",
                                   "-m",
                                   memory,
                                   "-nodefaults",
                                   "-no-user-config",
                                   "-nographic",
                                   "-serial",
                                   "stdio",
                                   "-device",
                                   "isa-debug-exit,iobase=0xf4,iosize=1",
                                   "-kernel",
                                   guest};
  std::vector<double> hvmm_ms, hvmm_rss, qemu_ms, qemu_rss;
  for (int i = 0; i < runs; ++i) {
    Sample h = run_once(hvmm);
    Sample q = run_once(qemu);
    if (h.status != 0 || q.status != 1) {
      fmt::print("FAIL: run {}: hvmm exited {} (want 0), qemu exited {} (want 1 = (0<<1)|1)\n", i,
                 h.status, q.status);
      return 1;
    }
    hvmm_ms.push_back(h.wall_ms);
    hvmm_rss.push_back(h.peak_rss_mib);
    qemu_ms.push_back(q.wall_ms);
    qemu_rss.push_back(q.peak_rss_mib);
  }
  Summary hw = summarize(hvmm_ms), hr = summarize(hvmm_rss);
  Summary qw = summarize(qemu_ms), qr = summarize(qemu_rss);
  fmt::print("boot to exit of {} with {} RAM, {} runs each, alternating\n", guest, memory, runs);
  fmt::print("{:<8} {:>12} {:>12} {:>16} {:>16}\n", "vmm", "wall med ms", "wall min ms",
             "peak RSS med MiB", "peak RSS min MiB");
  print_row("hvmm", hw, hr);
  print_row("qemu", qw, qr);
  double time_ratio = hw.median / qw.median;
  double rss_ratio = hr.median / qr.median;
  fmt::print(
      "ratio hvmm/qemu: wall {:.3f} (aim <= {:.2f}: {}), peak RSS {:.3f}; hvmm peak RSS "
      "{:.2f} MiB (aim <= {:.0f} MiB: {})\n",
      time_ratio, kAimTimeRatio, time_ratio <= kAimTimeRatio ? "met" : "MISSED", rss_ratio,
      hr.median, kAimRssMiB, hr.median <= kAimRssMiB ? "met" : "MISSED");
  // The figures the smoke run must see: every one measured, positive and finite.
  for (double figure : {hw.median, hr.median, qw.median, qr.median, time_ratio, rss_ratio}) {
    if (!std::isfinite(figure) || figure <= 0) {
      fmt::print("FAIL: a figure is missing (not a positive finite number)\n");
      return 1;
    }
  }
  return 0;
}
