// How the client ends: each gRPC status as its documented exit status with the daemon's
// message as it is; a daemon that is not there; help, version and the command list.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <set>

#include "client_run.h"
#include "hvmm/daemon/client/command_list.h"
#include "hvmm/daemon/client/exit_codes.h"
#include "hvmm/daemon/client/status_exit.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client::testing {
namespace {

namespace v1 = hvmm::v1;

// Run the client without any --socket of the test's.
ClientRun run_plain(const std::vector<std::string>& args) {
  std::ostringstream out;
  std::ostringstream err;
  ClientIo io{out, err, false};
  ClientRun result;
  result.status = run_client(args, io);
  result.out = out.str();
  result.err = err.str();
  return result;
}

// Every status code the daemon can answer with, and the exit status the table gives it.
TEST(ClientStatus, EveryCodeHasItsExitStatus) {
  const std::vector<std::pair<grpc::StatusCode, int>> expected = {
      {grpc::StatusCode::INVALID_ARGUMENT, 120},
      {grpc::StatusCode::NOT_FOUND, 120},
      {grpc::StatusCode::ALREADY_EXISTS, 120},
      {grpc::StatusCode::OUT_OF_RANGE, 120},
      {grpc::StatusCode::FAILED_PRECONDITION, 2},
      {grpc::StatusCode::ABORTED, 2},
      {grpc::StatusCode::DEADLINE_EXCEEDED, 3},
      {grpc::StatusCode::UNAVAILABLE, 4},
      {grpc::StatusCode::PERMISSION_DENIED, 5},
      {grpc::StatusCode::UNAUTHENTICATED, 5},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, 6},
      {grpc::StatusCode::UNKNOWN, 1},
      {grpc::StatusCode::INTERNAL, 1},
      {grpc::StatusCode::UNIMPLEMENTED, 1},
      {grpc::StatusCode::DATA_LOSS, 1},
      {grpc::StatusCode::CANCELLED, 1},
  };
  for (const auto& [code, status] : expected) {
    FakeDaemon daemon;
    const std::string message =
        "spec.memory_bytes: the daemon's own words for " + std::string(status_code_name(code));
    daemon.fail("Vm.Get", grpc::Status(code, message));
    ClientRun r = run(daemon, {"vm", "get", "web"});
    EXPECT_EQ(r.status, status) << status_code_name(code);
    EXPECT_EQ(exit_code_for(code), status);
    const std::string printed =
        code == grpc::StatusCode::UNAVAILABLE
            ? "hvmm: cannot reach hvmmd at " + daemon.socket() + ": " + message + "\n"
            : "hvmm: " + message + "\n";
    EXPECT_EQ(r.err, printed);
    EXPECT_EQ(r.out, "");
  }
}

// The exit-status table the help prints lists every code exit_code_for() maps, at its row.
TEST(ClientStatus, TableMatchesTheMapping) {
  for (int raw = 0; raw <= 16; ++raw) {
    const auto code = static_cast<grpc::StatusCode>(raw);
    const int status = exit_code_for(code);
    auto row = std::find_if(kClientExitStatuses.begin(), kClientExitStatuses.end(),
                            [status](const ClientExitStatus& r) { return r.status == status; });
    ASSERT_NE(row, kClientExitStatuses.end()) << status;
    if (code != grpc::StatusCode::OK) {
      EXPECT_NE(row->codes.find(status_code_name(code)), std::string_view::npos)
          << status_code_name(code) << " is not listed at " << status;
    }
  }
}

// No socket at the path: UNAVAILABLE's status, a message naming the path, nothing sent.
TEST(ClientStatus, MissingSocketNamesThePath) {
  ClientRun r = run_plain({"vm", "list", "--socket", "/nonexistent/hvmmd.sock"});
  EXPECT_EQ(r.status, kExitUnavailable);
  EXPECT_EQ(r.err,
            "hvmm: no hvmmd socket at /nonexistent/hvmmd.sock: No such file or directory (is "
            "hvmmd running? --socket names another socket)\n");
  ClientRun file = run_plain({"--socket", "/dev/null", "stats", "web"});
  EXPECT_EQ(file.status, kExitUnavailable);
  EXPECT_EQ(file.err, "hvmm: /dev/null is not a socket (--socket names hvmmd's unix socket)\n");
}

// A socket nobody listens on any more (a daemon that died) is UNAVAILABLE from gRPC itself.
TEST(ClientStatus, DeadSocketIsUnavailable) {
  ::hvmm::client::testing::FakeDaemon scratch;  // for a private directory
  const std::string path = scratch.socket() + ".dead";
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(fd);
  ClientRun r = run_plain({"vm", "list", "--socket", path});
  EXPECT_EQ(r.status, kExitUnavailable);
  EXPECT_EQ(r.err.rfind("hvmm: cannot reach hvmmd at " + path + ": ", 0), 0u) << r.err;
  ::unlink(path.c_str());
}

// The client's commands are exactly kClientCommands (what `hvmm --help` lists).
TEST(ClientStatus, HelpListsExactlyTheClientCommands) {
  ClientRun r = run_plain({"--help"});
  EXPECT_EQ(r.status, 0);
  const std::string& help = r.out;
  const size_t start = help.find("Subcommands:\n");
  ASSERT_NE(start, std::string::npos) << help;
  std::set<std::string> listed;
  for (const std::string& line : lines(help.substr(start + 13))) {
    if (line.empty() || line[0] != ' ') {
      break;
    }
    listed.insert(line.substr(2, line.find(' ', 2) - 2));
  }
  std::set<std::string> expected;
  for (const ClientCommand& command : kClientCommands) {
    expected.insert(std::string(command.name));
    EXPECT_NE(help.find(std::string(command.summary)), std::string::npos) << command.name;
    EXPECT_EQ(run_plain({std::string(command.name), "--help"}).status, 0) << command.name;
  }
  EXPECT_EQ(listed, expected);
  EXPECT_NE(help.find(client_exit_status_help()), std::string::npos);
}

// Unknown commands and options are bad arguments; no command at all prints the help.
TEST(ClientStatus, ParseErrorsAreBadArguments) {
  EXPECT_EQ(run_plain({"frobnicate"}).status, 120);
  EXPECT_EQ(run_plain({"vm", "list", "--frobnicate"}).status, 120);
  EXPECT_EQ(run_plain({"vm"}).status, 120);
  ClientRun none = run_plain({});
  EXPECT_EQ(none.status, 120);
  EXPECT_NE(none.err.find("Subcommands:"), std::string::npos);
}

// version prints the client's version and the daemon's figures; unreachable is said, not
// an error.
TEST(ClientStatus, VersionWithAndWithoutDaemon) {
  FakeDaemon daemon;
  v1::GetDaemonInfoResponse info;
  info.set_version("9.9.9");
  info.set_pid(1234);
  info.set_vms(2);
  info.set_running_vms(1);
  info.set_vmid_bits(8);
  daemon.respond("Daemon.GetDaemonInfo", info);
  for (const char* form : {"version", "--version"}) {
    ClientRun r = run(daemon, {form});
    ASSERT_EQ(r.status, 0) << r.err;
    auto out = lines(r.out);
    ASSERT_EQ(out.size(), 2u) << r.out;
    EXPECT_EQ(out[0], std::string("hvmm client ") + client_version());
    EXPECT_EQ(out[1].rfind("hvmmd 9.9.9 (pid 1234, started -, 2 VMs, 1 running, 8-bit VMIDs", 0),
              0u)
        << out[1];
  }
  ClientRun json = run(daemon, {"version", "--json"});
  EXPECT_EQ(json.out.rfind(std::string("{\"client\":\"") + client_version() +
                               "\",\"daemon\":{\"version\":\"9.9.9\"",
                           0),
            0u)
      << json.out;
  ClientRun away = run_plain({"version", "--socket", "/nonexistent/hvmmd.sock"});
  EXPECT_EQ(away.status, 0);
  EXPECT_EQ(away.out, std::string("hvmm client ") + client_version() +
                          "\nhvmmd: not reachable at /nonexistent/hvmmd.sock (no hvmmd socket at "
                          "/nonexistent/hvmmd.sock: No such file or directory (is hvmmd running? "
                          "--socket names another socket))\n");
  EXPECT_EQ(away.err, "");
}

// --socket and --json work before the command words as well as after them.
TEST(ClientStatus, GlobalOptionsAnywhere) {
  FakeDaemon daemon;
  ClientRun before = run_plain({"--json", "--socket", daemon.socket(), "vm", "list"});
  EXPECT_EQ(before.status, 0) << before.err;
  EXPECT_EQ(before.out, "{\"vms\":[]}\n");
  ClientRun middle = run_plain({"vm", "--socket", daemon.socket(), "list", "--json"});
  EXPECT_EQ(middle.status, 0) << middle.err;
  EXPECT_EQ(daemon.requests<v1::ListVmsRequest>("Vm.List").size(), 2u);
}

}  // namespace
}  // namespace hvmm::client::testing
