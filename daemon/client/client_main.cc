// hvmm-client: the client commands of `hvmm`, which execs this with its own argv.
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "hvmm/daemon/client/client.h"

int main(int argc, char** argv) {
  // `hvmm vm console NAME --follow | head` must end quietly when the reader goes away.
  std::signal(SIGPIPE, SIG_IGN);
  std::ios::sync_with_stdio(true);
  hvmm::client::ClientIo io{std::cout, std::cerr, ::isatty(STDOUT_FILENO) == 1};
  const int status = hvmm::client::run_client(std::vector<std::string>(argv + 1, argv + argc), io);
  std::cout.flush();
  return status;
}
