// hvmm-client: the client commands of `hvmm` (vm, balloon, reclaim, policy, stage2, tlb,
// notifier, faults, stats, version) against hvmmd over its unix socket.
//
// Every command takes --socket PATH (default daemon/common/defaults.h kDefaultSocket) and
// --json (protobuf's JSON mapping, one object per line; streams print one per message);
// without --json people get tables, lines and, on a terminal, progress bars. The exit status
// follows exit_codes.h; the daemon's error message is printed as it is, after "hvmm: ".
// run_client() is the whole program with its streams passed in, so tests run it in-process.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace hvmm::client {

// ClientIo is where a run of the client writes, and whether `out` is a terminal (progress
// bars then, one line per update otherwise).
struct ClientIo {
  std::ostream& out;
  std::ostream& err;
  bool out_is_terminal = false;
};

// Run the client on `args` (argv without the program name); returns the exit status.
int run_client(const std::vector<std::string>& args, ClientIo& io);

// The client's version (CMake's PROJECT_VERSION).
const char* client_version();

}  // namespace hvmm::client
