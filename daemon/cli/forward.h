// `hvmm`'s client commands are hvmm-client's: `hvmm vm list ...` execs hvmm-client, found
// next to the running hvmm (/proc/self/exe), with the same argv, so `hvmm` itself links no
// gRPC and starts as lean as `hvmm run` needs.
#pragma once

#include <string>
#include <vector>

namespace hvmm::cli {

// The client command word of `args` (argv without the program name), skipping the client's
// global options (--socket PATH, --json) before it; "" when the first word is not one.
std::string client_command_word(const std::vector<std::string>& args);

// The hvmm-client beside `self` (the running executable's path).
std::string client_path_beside(const std::string& self);

// Exec hvmm-client with `argv`. Returns only on failure, with the exit status after printing
// the error naming the path it expected (kExitClientMissing).
int exec_client(char** argv);

}  // namespace hvmm::cli
