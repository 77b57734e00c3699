// Integration tests of stopping a VM from the host and of console input: SIGTERM/SIGINT
// stop every vCPU thread promptly (halted BSP, APs parked waiting for SIPI), and bytes typed
// on a terminal reach the guest's UART.
#include <poll.h>

#include <gtest/gtest.h>
#include <pty.h>

#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using testing::guest;
using testing::HvmmProcess;
using testing::RunResult;

// Measure how long `process` takes to exit after `signal`, once the guest has halted.
RunResult stop_with(HvmmProcess& process, int signal, double& stop_ms) {
  EXPECT_TRUE(process.wait_for_output("halting\n", std::chrono::seconds(30)));
  auto sent = std::chrono::steady_clock::now();
  ::kill(process.pid(), signal);
  RunResult run = process.wait(std::chrono::seconds(10));
  stop_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
  return run;
}

// SIGTERM stops a VM whose BSP is halted and whose three APs never got a SIPI: status
// 128 + 15, well within a second.
TEST(Stop, SigtermStopsAllVcpus) {
  HVMM_SKIP_WITHOUT_KVM();
  HvmmProcess process({"run", "--kernel", guest("halt"), "--vcpus", "4"});
  double stop_ms = 0;
  RunResult run = stop_with(process, SIGTERM, stop_ms);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.status, 128 + SIGTERM) << run.err;
  EXPECT_EQ(run.out, "halting\n");
  EXPECT_LT(stop_ms, 1000.0);
}

// SIGINT (Ctrl-C) does the same with status 130.
TEST(Stop, SigintStopsVm) {
  HVMM_SKIP_WITHOUT_KVM();
  HvmmProcess process({"run", "--kernel", guest("halt")});
  double stop_ms = 0;
  RunResult run = stop_with(process, SIGINT, stop_ms);
  EXPECT_EQ(run.status, 128 + SIGINT) << run.err;
  EXPECT_LT(stop_ms, 1000.0);
}

// A halted VM uses no CPU while it waits (no busy loops in the VMM).
TEST(Stop, HaltedVmIsIdle) {
  HVMM_SKIP_WITHOUT_KVM();
  HvmmProcess process({"run", "--kernel", guest("halt"), "--vcpus", "2"});
  ASSERT_TRUE(process.wait_for_output("halting\n", std::chrono::seconds(30)));
  auto cpu_ticks = [&] {
    std::string stat = testing::slurp("/proc/" + std::to_string(process.pid()) + "/stat");
    std::stringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    long ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14 || i == 15) {
        ticks += std::stol(field);  // utime + stime
      }
    }
    return ticks;
  };
  long before = cpu_ticks();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  long after = cpu_ticks();
  EXPECT_LE(after - before, 5) << "hvmm used CPU while the guest was halted";
  ::kill(process.pid(), SIGTERM);
  EXPECT_EQ(process.wait(std::chrono::seconds(10)).status, 128 + SIGTERM);
}

// Read from the pty master until `text` shows up or `timeout` passes.
bool read_until(int master, std::string& seen, const std::string& text,
                std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (seen.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd fd{master, POLLIN, 0};
    if (::poll(&fd, 1, 50) > 0) {
      char buffer[256];
      ssize_t n = ::read(master, buffer, sizeof(buffer));
      if (n <= 0) {
        break;
      }
      seen.append(buffer, static_cast<size_t>(n));
    }
  }
  return seen.find(text) != std::string::npos;
}

// With stdin on a terminal, typed bytes reach the guest's UART (the echo guest sends them
// back, without the terminal echoing them too) and 'q' makes it exit with status 7.
TEST(Console, TerminalInputReachesGuest) {
  HVMM_SKIP_WITHOUT_KVM();
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string binary = HVMM_BINARY;
    std::string kernel = guest("echo");
    ::execl(binary.c_str(), binary.c_str(), "run", "--kernel", kernel.c_str(), nullptr);
    ::_exit(127);
  }
  std::string seen;
  EXPECT_TRUE(read_until(master, seen, "echo ready", std::chrono::seconds(30))) << seen;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(::write(master, "hi q", 4), 4);
  EXPECT_TRUE(read_until(master, seen, "bye", std::chrono::seconds(30))) << seen;
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  ::close(master);
  EXPECT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 7);
  EXPECT_NE(seen.find("echo ready\r\nhi q\r\nbye"), std::string::npos) << seen;
}

}  // namespace
}  // namespace hvmm::vmm
