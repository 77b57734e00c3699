// The `hvmm` front end: `run` in-process, the client commands forwarded, help and version.
#include "hvmm/daemon/cli/cli.h"

#include <CLI/CLI.hpp>

#include "hvmm/daemon/cli/forward.h"
#include "hvmm/daemon/cli/run_command.h"
#include "hvmm/daemon/client/command_list.h"
#include "hvmm/daemon/client/exit_codes.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::cli {
namespace {

// List the client commands as subcommands, for the help only: they are never parsed here.
void add_client_commands(CLI::App& app) {
  for (const client::ClientCommand& command : client::kClientCommands) {
    app.add_subcommand(std::string(command.name), std::string(command.summary))
        ->group("Client commands (hvmmd over --socket; see hvmm COMMAND --help)")
        ->allow_extras();
  }
}

}  // namespace

// The version CMake's project() declares (daemon/CMakeLists.txt passes it in).
const char* version() {
  return HVMM_VERSION;
}

// Parse only the `run` flags (no program name, no subcommand word).
Result<RunFlags> parse_run_arguments(const std::vector<std::string>& args) {
  RunFlags flags;
  CLI::App run{"run"};
  add_run_flags(run, flags);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    run.parse(reversed);
  } catch (const CLI::ParseError& error) {
    return make_error(ErrorCode::kInvalidArgument, "{}", error.what());
  }
  return flags;
}

// Client commands leave before CLI11 sees them; `run` and the top-level flags stay.
int run_cli(int argc, char** argv, std::span<const uint8_t> bundled_kernel) {
  if (!client_command_word(std::vector<std::string>(argv + 1, argv + argc)).empty()) {
    return exec_client(argv);
  }
  CLI::App app{"hvmm: a KVM-based virtual machine monitor specialised in guest memory"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("hvmm ") + version());
  const std::string exit_status_help = vmm::exit_status_help();
  app.footer(exit_status_help + "\n" + client::client_exit_status_help());
  RunFlags flags;
  CLI::App* run = app.add_subcommand(
      "run", "Run one VM in this process until the guest writes its exit status to port 0xf4");
  run->footer(exit_status_help);
  add_run_flags(*run, flags);
  add_client_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int status = app.exit(error);
    return status == 0 ? 0 : vmm::kExitBadArguments;
  }
  return run_vm(flags, bundled_kernel);
}

}  // namespace hvmm::cli
