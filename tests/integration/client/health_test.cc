// `hvmm health`: the daemon's grpc.health.v1 status as the exit status a probe reads.
#include <gtest/gtest.h>

#include "client_run.h"

namespace hvmm::client::testing {
namespace {

// A daemon that serves is exit 0, and the line says so.
TEST(ClientHealth, ServingIsExitZero) {
  FakeDaemon daemon;
  ClientRun r = run(daemon, {"health"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "hvmmd at " + daemon.socket() + ": SERVING\n");
}

// NOT_SERVING (hvmmd starting or stopping) is exit 4, so a readiness probe fails.
TEST(ClientHealth, NotServingIsExitFour) {
  FakeDaemon daemon;
  daemon.set_serving(false);
  ClientRun r = run(daemon, {"health", "--timeout", "2s"});
  EXPECT_EQ(r.status, 4);
  EXPECT_EQ(r.out, "hvmmd at " + daemon.socket() + ": NOT_SERVING\n");
  daemon.set_serving(true);
  EXPECT_EQ(run(daemon, {"health"}).status, 0) << "serving again";
}

// --json is one object with the socket and the status name.
TEST(ClientHealth, JsonNamesTheStatus) {
  FakeDaemon daemon;
  ClientRun r = run(daemon, {"health", "--json"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "{\"socket\":\"" + daemon.socket() + "\",\"status\":\"SERVING\"}\n");
}

// No daemon at the socket is exit 4 naming the socket; a bad --timeout is exit 120.
TEST(ClientHealth, NoDaemonAndBadTimeout) {
  std::string socket;
  {
    FakeDaemon gone;
    socket = gone.socket();
  }
  std::ostringstream out;
  std::ostringstream err;
  ClientIo io{out, err, false};
  EXPECT_EQ(run_client({"health", "--socket", socket}, io), 4);
  EXPECT_NE(err.str().find(socket), std::string::npos) << err.str();
  EXPECT_EQ(out.str(), "");

  FakeDaemon daemon;
  ClientRun r = run(daemon, {"health", "--timeout", "soon"});
  EXPECT_EQ(r.status, 120);
  EXPECT_NE(r.err.find("--timeout"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace hvmm::client::testing
