// The real `hvmm` binary forwarding its client commands to hvmm-client: statuses and
// messages come through unchanged, `hvmm --help` lists the client commands, and a missing
// hvmm-client is a clear error naming where it was expected.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "child_process.h"
#include "fake_daemon.h"
#include "hvmm/daemon/client/command_list.h"
#include "hvmm/daemon/client/exit_codes.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client::testing {
namespace {

using ::hvmm::testing::run_process;
using ::hvmm::testing::RunResult;

RunResult hvmm(std::vector<std::string> args) {
  args.insert(args.begin(), HVMM_BINARY);
  return run_process(args, std::chrono::seconds(30));
}

// No daemon at the socket: UNAVAILABLE's status and a message naming the socket.
TEST(HvmmForward, UnavailableNamesTheSocket) {
  RunResult r = hvmm({"vm", "list", "--socket", "/nonexistent"});
  EXPECT_EQ(r.status, kExitUnavailable) << r.err;
  EXPECT_NE(r.err.find("/nonexistent"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.rfind("hvmm: no hvmmd socket at /nonexistent: ", 0), 0u) << r.err;
  EXPECT_EQ(r.out, "");
}

// A client command goes through hvmm to the daemon and back, --json included.
TEST(HvmmForward, CommandsReachTheDaemon) {
  FakeDaemon daemon;
  hvmm::v1::ListVmsResponse list;
  list.add_vms()->set_name("web");
  daemon.respond("Vm.List", list);
  RunResult r = hvmm({"--socket", daemon.socket(), "vm", "list", "--json"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"name\":\"web\""), std::string::npos) << r.out;
  EXPECT_EQ(daemon.requests<hvmm::v1::ListVmsRequest>("Vm.List").size(), 1u);
  daemon.fail("Vm.Get", grpc::Status(grpc::StatusCode::NOT_FOUND, "name: no VM named 'x'"));
  RunResult missing = hvmm({"vm", "get", "x", "--socket", daemon.socket()});
  EXPECT_EQ(missing.status, kExitBadArguments);
  EXPECT_EQ(missing.err, "hvmm: name: no VM named 'x'\n");
}

// `hvmm --help` lists every client command beside run, and both exit-status tables.
TEST(HvmmForward, HelpListsTheClientCommands) {
  RunResult r = hvmm({"--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("  run  "), std::string::npos) << r.out;
  for (const ClientCommand& command : kClientCommands) {
    EXPECT_NE(r.out.find("  " + std::string(command.name) + " "), std::string::npos)
        << command.name;
    EXPECT_NE(r.out.find(std::string(command.summary)), std::string::npos) << command.name;
  }
  EXPECT_NE(r.out.find(client_exit_status_help()), std::string::npos) << r.out;
  RunResult vm_help = hvmm({"vm", "--help"});
  EXPECT_EQ(vm_help.status, 0);
  EXPECT_NE(vm_help.out.find("create"), std::string::npos) << "the client's own help";
}

// An hvmm with no hvmm-client beside it says where it looked, with status 127.
TEST(HvmmForward, MissingClientIsNamed) {
  FakeDaemon scratch;
  const std::filesystem::path dir = std::filesystem::path(scratch.socket()).parent_path();
  const std::filesystem::path copy = dir / "hvmm";
  std::filesystem::copy_file(HVMM_BINARY, copy);
  RunResult r = run_process({copy.string(), "vm", "list"}, std::chrono::seconds(30));
  EXPECT_EQ(r.status, kExitClientMissing);
  EXPECT_NE(r.err.find("expected at " + (dir / "hvmm-client").string()), std::string::npos)
      << r.err;
  RunResult run = run_process({copy.string(), "run", "--memory", "1M"}, std::chrono::seconds(30));
  EXPECT_EQ(run.status, 120) << "hvmm run needs no client";
}

}  // namespace
}  // namespace hvmm::client::testing
