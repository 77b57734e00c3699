// The `hvmm` command line: `hvmm run` runs one VM in-process; every client command of hvmmd
// (client/command_list.h) is forwarded to hvmm-client (forward.h); `--help` lists both and
// `--version` prints hvmm's version.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/daemon/cli/run_flags.h"

namespace hvmm::cli {

// Parse `args` (argv without the program name) as `hvmm run ...` flags, as typed. Returns
// them, or an Error with CLI11's message for unknown options or malformed values.
Result<RunFlags> parse_run_arguments(const std::vector<std::string>& args);

// The version `hvmm --version` prints after "hvmm " (CMake's PROJECT_VERSION).
const char* version();

// Run the CLI: parse argv, dispatch the subcommand, return the process exit status.
int run_cli(int argc, char** argv, std::span<const uint8_t> bundled_kernel);

}  // namespace hvmm::cli
