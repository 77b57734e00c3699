// hvmmd's flags and configuration file (daemon/server/config.h): the example file parses,
// flags win over the file, and errors name the key with exit status 120.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "hvmm/daemon/server/config.h"

namespace hvmm::daemon {
namespace {

ConfigOutcome parse(std::vector<std::string> args) {
  args.insert(args.begin(), "hvmmd");
  std::vector<const char*> argv;
  for (const std::string& arg : args) {
    argv.push_back(arg.c_str());
  }
  return parse_daemon_config(static_cast<int>(argv.size()), argv.data(), "/opt/hvmm/bin/hvmmd");
}

// The documented example is a valid configuration, and says what the defaults are.
TEST(ServerConfig, ExampleFileParses) {
  auto outcome = parse({"--config", HVMM_SOURCE_DIR "/deploy/hvmmd.conf.example"});
  ASSERT_TRUE(outcome.config) << outcome.message;
  EXPECT_EQ(outcome.config->socket, "/run/hvmm/hvmmd.sock");
  EXPECT_EQ(outcome.config->state_dir, "/var/lib/hvmm");
  EXPECT_EQ(outcome.config->fault_log, "/var/lib/hvmm/faults.jsonl");
  EXPECT_EQ(outcome.config->vm_process, "/opt/hvmm/bin/hvmm-vm");
  EXPECT_EQ(outcome.config->vmid_bits, 8u);
  EXPECT_EQ(outcome.config->log_format, LogFormat::kText);
  EXPECT_TRUE(outcome.config->tcp_listen.empty());
  EXPECT_FALSE(outcome.config->policy_enabled);
  EXPECT_EQ(outcome.config->policy_step_bytes, uint64_t{64} << 20);
  EXPECT_EQ(outcome.config->host_meminfo, "/proc/meminfo");
}

// The policy's sizes take unit suffixes like the other sizes.
TEST(ServerConfig, PolicySizesTakeUnits) {
  auto outcome = parse({"--policy-min-available", "512M", "--policy-max-vm-rss", "2G",
                        "--policy-step", "16M", "--policy-enabled", "true"});
  ASSERT_TRUE(outcome.config) << outcome.message;
  EXPECT_EQ(outcome.config->policy_min_available_bytes, uint64_t{512} << 20);
  EXPECT_EQ(outcome.config->policy_max_vm_rss_bytes, uint64_t{2} << 30);
  EXPECT_EQ(outcome.config->policy_step_bytes, uint64_t{16} << 20);
  EXPECT_TRUE(outcome.config->policy_enabled);
}

// Flags win over the file; the file's keys are the flags' names.
TEST(ServerConfig, FlagsWinOverTheFile) {
  std::string path = ::testing::TempDir() + "/hvmmd-flags.conf";
  std::ofstream(path) << "vmid-bits = 12\nlog-format = \"json\"\nsocket = \"/tmp/a.sock\"\n";
  auto outcome = parse({"--config", path, "--socket", "/tmp/b.sock"});
  ASSERT_TRUE(outcome.config) << outcome.message;
  EXPECT_EQ(outcome.config->vmid_bits, 12u);
  EXPECT_EQ(outcome.config->log_format, LogFormat::kJson);
  EXPECT_EQ(outcome.config->socket, "/tmp/b.sock");
  std::remove(path.c_str());
}

TEST(ServerConfig, ErrorsNameTheKey) {
  std::string path = ::testing::TempDir() + "/hvmmd-bad.conf";
  std::ofstream(path) << "no-such-key = 3\n";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--config", path}, "unknown key 'no-such-key'"},
      {{"--config", "/nonexistent/hvmmd.conf"}, "/nonexistent/hvmmd.conf"},
      {{"--vmid-bits", "17"}, "--vmid-bits"},
      {{"--listen-tcp", "localhost:1"}, "listen-tcp: TCP needs TLS"},
      {{"--listen-tcp", "nocolon", "--insecure-tcp"}, "listen-tcp: 'nocolon' is not HOST:PORT"},
      {{"--insecure-tcp"}, "insecure-tcp: listen-tcp is not set"},
      {{"--tls-cert", "/x"}, "tls-cert: TLS files are given but listen-tcp is not"},
      {{"--socket", std::string(200, 's')}, "socket: "},
      {{"--socket-group", "no-such-group-hvmm"}, "socket-group: no group named"},
      {{"--log-format", "yaml"}, "--log-format"},
      {{"--policy-min-available", "lots"}, "policy-min-available"},
      {{"--policy-max-vm-rss", "12Q"}, "policy-max-vm-rss"},
      {{"--policy-step", "100"}, "policy-step"},
      {{"--policy-max-pressure", "101"}, "--policy-max-pressure"},
      {{"--policy-max-pressure", "nan"}, "policy-max-pressure"},
      {{"--policy-hysteresis", "1.5"}, "--policy-hysteresis"},
      {{"--policy-interval-ms", "10"}, "--policy-interval-ms"},
      {{"--policy-balloon-timeout-ms", "5"}, "--policy-balloon-timeout-ms"},
      {{"--policy-enabled", "maybe"}, "--policy-enabled"},
      {{"--host-meminfo", ""}, "host-meminfo"},
  };
  for (const auto& [args, named] : cases) {
    auto outcome = parse(args);
    EXPECT_FALSE(outcome.config) << named;
    EXPECT_EQ(outcome.exit_status, 120) << named;
    EXPECT_NE(outcome.message.find(named), std::string::npos) << outcome.message;
  }
  std::remove(path.c_str());
}

TEST(ServerConfig, HelpAndVersionExitZero) {
  auto help = parse({"--help"});
  EXPECT_FALSE(help.config);
  EXPECT_EQ(help.exit_status, 0);
  EXPECT_NE(help.message.find("--socket"), std::string::npos);
  auto version = parse({"--version"});
  EXPECT_EQ(version.exit_status, 0);
  EXPECT_NE(version.message.find("hvmmd "), std::string::npos);
}

}  // namespace
}  // namespace hvmm::daemon
