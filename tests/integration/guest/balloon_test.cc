// The guest kernel's virtio-mmio and virtio-balloon drivers against QEMU's real devices:
// QEMU microvm (TCG unless /dev/kvm opens) with `virtio-balloon-device` on a version-2
// virtio-mmio transport, the target set through QMP while the guest idles (`idle=`), `actual`
// read back with query-balloon, statistics through the device's guest-stats property, free
// page reporting seen in QEMU's own RSS, and deflate-on-oom forced by a workload that needs
// ballooned memory. The tests skip without QEMU, except under CI, where that is a failure.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.h"

namespace {

using hvmm::testing::slurp;
using hvmm::testing::TempPath;
using namespace std::chrono_literals;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGuestRam = 256 * kMiB;

// Longest wait for one guest step under TCG on a busy 2-core machine.
constexpr std::chrono::seconds kStepTimeout(60);

// True when the environment variable CI is set (to anything but "", "0" or "false").
bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) != "" && std::string(ci) != "0" &&
         std::string(ci) != "false";
}

// qemu-system-x86_64: the one found at configure time, else the first on PATH; "" if none.
std::string qemu_binary() {
  if (!std::string(HVMM_QEMU).empty() && ::access(HVMM_QEMU, X_OK) == 0)
    return HVMM_QEMU;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = dir + "/qemu-system-x86_64";
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

// Skip unless QEMU is installed; under CI, fail instead.
#define REQUIRE_QEMU()                                                                    \
  do {                                                                                    \
    if (qemu_binary().empty()) {                                                          \
      if (running_in_ci())                                                                \
        FAIL() << "qemu-system-x86_64 is not installed and CI is set: CI must run these"; \
      GTEST_SKIP() << "qemu-system-x86_64 is not installed";                              \
    }                                                                                     \
  } while (false)

// What QEMU should emulate besides the kernel's command line.
struct GuestConfig {
  std::string cmdline;
  bool deflate_on_oom = true;
  bool start_paused = false;  // -S: set the target before the guest runs
};

// One QEMU microvm with the balloon: console on stdin/stdout (stdin a pipe, stdout a file),
// QMP on a unix socket. Killed when destroyed unreaped.
class QemuGuest {
 public:
  explicit QemuGuest(const GuestConfig& config) : out_("console"), qmp_path_("qmp") {
    std::vector<std::string> args = {qemu_binary(), "-M", "microvm,acpi=off"};
    if (hvmm::testing::kvm_unavailable_reason().empty())
      args.insert(args.end(), {"-cpu", "host,-arch-capabilities", "-enable-kvm"});
    else
      args.insert(args.end(), {"-accel", "tcg", "-cpu", "max"});
    std::string balloon =
        "virtio-balloon-device,id=balloon0,free-page-reporting=on,deflate-on-oom=";
    balloon += config.deflate_on_oom ? "on" : "off";
    args.insert(args.end(), {"-m",
                             "256M",
                             "-smp",
                             "1",
                             "-nodefaults",
                             "-no-user-config",
                             "-nographic",
                             "-serial",
                             "stdio",
                             "-device",
                             "isa-debug-exit,iobase=0xf4,iosize=1",
                             "-no-reboot",
                             "-global",
                             "virtio-mmio.force-legacy=false",
                             "-device",
                             balloon,
                             "-qmp",
                             "unix:" + qmp_path_.path + ",server=on,wait=off",
                             "-kernel",
                             HVMM_GUEST_KERNEL_ELF,
                             "-append",
                             config.cmdline});
    if (config.start_paused)
      args.push_back("-S");
    start(args);
  }
  ~QemuGuest() {
    if (qmp_fd_ >= 0)
      ::close(qmp_fd_);
    if (stdin_fd_ >= 0)
      ::close(stdin_fd_);
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  QemuGuest(const QemuGuest&) = delete;
  QemuGuest& operator=(const QemuGuest&) = delete;

  pid_t pid() const { return pid_; }
  std::string console() const { return slurp(out_.path); }

  // Wait until the console holds `text` at or after byte `from`; return where it ends (npos
  // on timeout).
  size_t wait_for(const std::string& text, size_t from = 0,
                  std::chrono::seconds timeout = kStepTimeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string out = console();
      size_t at = out.size() > from ? out.find(text, from) : std::string::npos;
      if (at != std::string::npos)
        return at + text.size();
      std::this_thread::sleep_for(20ms);
    }
    return std::string::npos;
  }

  // Send one QMP command and return its reply line ("return" or "error"), skipping events.
  std::string qmp(const std::string& command) {
    if (qmp_fd_ < 0 && !qmp_connect())
      return "QMP connection failed";
    std::string line = command + "\n";
    if (::write(qmp_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      return "QMP write failed";
    for (;;) {
      std::string reply = qmp_read_line();
      if (reply.empty() || reply.find("\"return\"") != std::string::npos ||
          reply.find("\"error\"") != std::string::npos)
        return reply;
    }
  }

  // Write bytes to the guest's console input.
  void type(const std::string& text) {
    ASSERT_EQ(::write(stdin_fd_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }

  // Wait for QEMU to exit; return its status (-1 on timeout, then killed).
  int wait_exit(std::chrono::seconds timeout = kStepTimeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int wstatus = 0;
    while (::waitpid(pid_, &wstatus, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        reaped_ = true;
        return -1;
      }
      std::this_thread::sleep_for(10ms);
    }
    reaped_ = true;
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  }

  // QEMU's resident memory (VmRSS) in bytes, 0 if unreadable.
  uint64_t rss() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0)
        return std::stoull(line.substr(6)) * 1024;
    return 0;
  }

 private:
  // Fork QEMU with a stdin pipe and stdout+stderr to the console file.
  void start(const std::vector<std::string>& args) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (std::string& a : copy)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      int o = ::open(out_.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(pipe_fds[0], 0);
      ::dup2(o, 1);
      ::dup2(o, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(pipe_fds[0]);
    stdin_fd_ = pipe_fds[1];
  }

  // Connect (retrying while QEMU creates the socket), read the greeting, enter command mode.
  bool qmp_connect() {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", qmp_path_.path.c_str());
      if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        qmp_fd_ = fd;
        qmp_read_line();  // the greeting
        return qmp("{\"execute\":\"qmp_capabilities\"}").find("\"return\"") != std::string::npos;
      }
      ::close(fd);
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  // One line from the QMP socket ("" on EOF).
  std::string qmp_read_line() {
    for (;;) {
      size_t nl = qmp_buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = qmp_buffer_.substr(0, nl);
        qmp_buffer_.erase(0, nl + 1);
        return line;
      }
      char chunk[4096];
      ssize_t n = ::read(qmp_fd_, chunk, sizeof(chunk));
      if (n <= 0)
        return "";
      qmp_buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  TempPath out_;
  TempPath qmp_path_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int qmp_fd_ = -1;
  bool reaped_ = false;
  std::string qmp_buffer_;
};

// The first unsigned number after `"key": ` in a QMP reply; -1 if absent.
int64_t json_number(const std::string& reply, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(reply, m, std::regex("\"" + key + "\": *([0-9]+)")))
    return -1;
  return std::stoll(m[1].str());
}

// QMP `balloon`: ask for the guest to keep `bytes` of RAM.
std::string set_balloon(QemuGuest& guest, uint64_t bytes) {
  return guest.qmp("{\"execute\":\"balloon\",\"arguments\":{\"value\":" + std::to_string(bytes) +
                   "}}");
}

// query-balloon's `actual` (guest RAM minus the balloon), -1 if absent.
int64_t balloon_actual(QemuGuest& guest) {
  return json_number(guest.qmp("{\"execute\":\"query-balloon\"}"), "actual");
}

// The console line that says the balloon reached `pages`.
std::string target_line(uint64_t pages) {
  return "virtio-balloon: target " + std::to_string(pages) + " pages, actual " +
         std::to_string(pages) + " (";
}

// The guest finds the version-2 balloon, negotiates its features, routes its IRQ through the
// IOAPIC; inflates to a QMP target (query-balloon shows it), answers statistics requests,
// deflates back; a console byte ends the idle loop and the exit line counts it all.
TEST(GuestBalloonQemu, InflatesAndDeflatesToTheTarget) {
  REQUIRE_QEMU();
  // Besides QEMU's own virtio_mmio.device= option: an empty slot given with a K size (skipped
  // silently) and a malformed one (IRQ 0, rejected as Linux does).
  QemuGuest guest(
      {"loglevel=7 idle=300 page_reporting.delay_ms=100000 virtio_mmio.device=4K@0xfeb00000:5 "
       "virtio_mmio.device=512@0xd0000000:0"});
  size_t at = guest.wait_for("idle: serving devices");
  ASSERT_NE(at, std::string::npos) << guest.console();
  std::string boot = guest.console();
  EXPECT_NE(boot.find("virtio-mmio: device 5 (vendor 554d4551) at feb00"), std::string::npos)
      << boot;
  EXPECT_EQ(boot.find("virtio-mmio: device "), boot.rfind("virtio-mmio: device 5 (")) << boot;
  EXPECT_NE(boot.find("virtio-mmio: ignoring malformed virtio_mmio.device=512@0xd0000000:0"),
            std::string::npos)
      << boot;
  EXPECT_EQ(boot.find("cannot be routed"), std::string::npos) << "the IRQ is polled\n" << boot;
  EXPECT_NE(
      boot.find("virtio-balloon: ready (stats on, deflate-on-oom on, free page reporting on)"),
      std::string::npos)
      << boot;
  EXPECT_EQ(balloon_actual(guest), static_cast<int64_t>(kGuestRam));

  // Inflate to 128 MiB (32768 pages): QEMU's config change reaches the guest's interrupt.
  EXPECT_NE(set_balloon(guest, 128 * kMiB).find("\"return\""), std::string::npos);
  at = guest.wait_for(target_line(32768), at);
  ASSERT_NE(at, std::string::npos) << guest.console();
  EXPECT_EQ(balloon_actual(guest), static_cast<int64_t>(128 * kMiB));

  // Statistics: ask QEMU to poll every second and read what the guest answered.
  EXPECT_NE(guest
                .qmp("{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/machine/peripheral/"
                     "balloon0\",\"property\":\"guest-stats-polling-interval\",\"value\":1}}")
                .find("\"return\""),
            std::string::npos);
  int64_t total = -1;
  int64_t free = -1;
  for (int i = 0; i < 100 && total <= 0; ++i) {
    std::this_thread::sleep_for(200ms);
    std::string stats = guest.qmp(
        "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/peripheral/balloon0\","
        "\"property\":\"guest-stats\"}}");
    total = json_number(stats, "stat-total-memory");
    free = json_number(stats, "stat-free-memory");
  }
  EXPECT_GT(total, static_cast<int64_t>(200 * kMiB)) << "guest-stats never arrived";
  EXPECT_LT(total, static_cast<int64_t>(kGuestRam));
  EXPECT_GT(free, static_cast<int64_t>(64 * kMiB));
  EXPECT_LT(free, static_cast<int64_t>(128 * kMiB)) << "the balloon's pages are not free";

  // Deflate completely.
  EXPECT_NE(set_balloon(guest, kGuestRam).find("\"return\""), std::string::npos);
  at = guest.wait_for(target_line(0), at);
  ASSERT_NE(at, std::string::npos) << guest.console();
  EXPECT_EQ(balloon_actual(guest), static_cast<int64_t>(kGuestRam));

  guest.type("q");
  EXPECT_EQ(guest.wait_exit(), 1) << "exit 0 through isa-debug-exit is QEMU status 1\n"
                                  << guest.console();
  std::string out = guest.console();
  EXPECT_NE(out.find("idle: done (console input)"), std::string::npos) << out;
  EXPECT_NE(out.find("virtio-balloon: 0 pages held (target 0), 32768 inflated, 32768 deflated "
                     "(0 on oom in 0 events), 256 buffers"),
            std::string::npos)
      << out;
}

// After a 64 MiB workload exits, free page reporting hands its memory back: QEMU discards the
// reported ranges, so its RSS falls by most of what the workload touched.
TEST(GuestBalloonQemu, FreePageReportingReleasesWorkloadMemory) {
  REQUIRE_QEMU();
  QemuGuest guest({"workload=touch_seq:64M idle=300 page_reporting.delay_ms=1000"});
  size_t at = guest.wait_for("workload touch_seq: ok");
  ASSERT_NE(at, std::string::npos) << guest.console();
  uint64_t peak = guest.rss();
  at = guest.wait_for("page-reporting: ", at);
  ASSERT_NE(at, std::string::npos) << guest.console();
  ASSERT_NE(guest.wait_for(" us)", at), std::string::npos);
  uint64_t after = guest.rss();
  std::cout << "[   NOTE   ] QEMU RSS " << (peak >> 20) << " MiB after the workload, "
            << (after >> 20) << " MiB after reporting\n";
  EXPECT_GE(peak, after + 48 * kMiB) << guest.console();
  std::smatch m;
  std::string out = guest.console();
  ASSERT_TRUE(std::regex_search(out, m,
                                std::regex("page-reporting: ([0-9]+) pages in ([0-9]+) "
                                           "requests")))
      << out;
  EXPECT_GE(std::stoull(m[1].str()), 64 * kMiB / 4096) << out;
  EXPECT_EQ(set_balloon(guest, 128 * kMiB).find("\"error\""), std::string::npos);
  ASSERT_NE(guest.wait_for(target_line(32768), at), std::string::npos) << guest.console();
  guest.type("q");
  EXPECT_EQ(guest.wait_exit(), 1) << guest.console();
}

// Start with most of RAM ballooned (target set before the guest runs); a workload that needs
// more than is left succeeds because the allocator deflates the balloon at its min watermark,
// and `actual` (query-balloon) grows accordingly.
TEST(GuestBalloonQemu, DeflateOnOomFeedsAWorkload) {
  REQUIRE_QEMU();
  QemuGuest guest({"workload=touch_seq:96M idle=300", /*deflate_on_oom=*/true,
                   /*start_paused=*/true});
  EXPECT_NE(set_balloon(guest, 64 * kMiB).find("\"return\""), std::string::npos);
  EXPECT_NE(guest.qmp("{\"execute\":\"cont\"}").find("\"return\""), std::string::npos);
  size_t at = guest.wait_for(target_line(49152));
  ASSERT_NE(at, std::string::npos) << guest.console();
  at = guest.wait_for("workload touch_seq: ", at);
  ASSERT_NE(at, std::string::npos) << guest.console();
  ASSERT_NE(guest.wait_for("idle: serving", at), std::string::npos) << guest.console();
  std::string out = guest.console();
  EXPECT_NE(out.find("workload touch_seq: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("virtio-balloon: deflate-on-oom gave back 256 pages"), std::string::npos)
      << out;
  int64_t actual = balloon_actual(guest);
  EXPECT_GT(actual, static_cast<int64_t>(64 * kMiB + 32 * kMiB)) << "the balloon shrank";
  guest.type("q");
  EXPECT_EQ(guest.wait_exit(), 1) << guest.console();
}

// The same without DEFLATE_ON_OOM offered: the workload cannot get the memory and fails, and
// the balloon keeps its pages (so the test above really depends on deflate-on-oom).
TEST(GuestBalloonQemu, WithoutDeflateOnOomTheWorkloadFails) {
  REQUIRE_QEMU();
  QemuGuest guest({"workload=touch_seq:96M idle=300", /*deflate_on_oom=*/false,
                   /*start_paused=*/true});
  EXPECT_NE(set_balloon(guest, 64 * kMiB).find("\"return\""), std::string::npos);
  EXPECT_NE(guest.qmp("{\"execute\":\"cont\"}").find("\"return\""), std::string::npos);
  size_t at = guest.wait_for("workload touch_seq: ");
  ASSERT_NE(at, std::string::npos) << guest.console();
  ASSERT_NE(guest.wait_for("idle: serving", at), std::string::npos) << guest.console();
  std::string out = guest.console();
  EXPECT_NE(out.find("deflate-on-oom off"), std::string::npos) << out;
  EXPECT_NE(out.find("workload touch_seq: FAILED"), std::string::npos) << out;
  EXPECT_EQ(out.find("deflate-on-oom gave back"), std::string::npos) << out;
  EXPECT_EQ(balloon_actual(guest), static_cast<int64_t>(64 * kMiB));
  guest.type("q");
  EXPECT_EQ(guest.wait_exit(), 3) << "a failed workload exits with 1: QEMU status 3\n"
                                  << guest.console();
}

}  // namespace
