// run_client(): the client commands' CLI11 app, parsed, then the selected command run.
#include "hvmm/daemon/client/client.h"

#include <CLI/CLI.hpp>

#include <algorithm>

#include "hvmm/daemon/client/command_list.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/exit_codes.h"
#include "hvmm/daemon/common/defaults.h"

namespace hvmm::client {
namespace {

// Every command of kClientCommands, declared by its group.
void add_commands(CLI::App& app, Context& context) {
  add_vm_commands(app, context);
  add_balloon_command(app, context);
  add_reclaim_commands(app, context);
  add_policy_commands(app, context);
  add_stage2_commands(app, context);
  add_tlb_commands(app, context);
  add_watch_commands(app, context);
  add_stats_command(app, context);
  add_health_command(app, context);
  add_version_command(app, context);
}

// The global options, which every subcommand accepts too (fallthrough).
void add_global_options(CLI::App& app, Context& context) {
  app.add_option("--socket", context.socket_option(), "hvmmd's unix socket")
      ->type_name("PATH")
      ->default_str(daemon::kDefaultSocket);
  app.add_flag("--json", context.json_option(),
               "Print protobuf's JSON mapping, one object per line (streams: one per message)");
}

// Subcommands pass options they do not know to their parent, so --socket and --json work
// after any command word.
void fall_through(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands({})) {
    sub->fallthrough();
    fall_through(*sub);
  }
}

}  // namespace

const char* client_version() {
  return HVMM_VERSION;
}

CLI::App* add_top_command(CLI::App& app, std::string_view name) {
  auto command = std::find_if(kClientCommands.begin(), kClientCommands.end(),
                              [name](const ClientCommand& c) { return c.name == name; });
  const std::string summary = command == kClientCommands.end() ? "" : std::string(command->summary);
  return app.add_subcommand(std::string(name), summary);
}

// CLI11 errors (and --help) are printed by CLI11 itself; help and --version exit 0, other
// parse errors are bad arguments.
int run_client(const std::vector<std::string>& args, ClientIo& io) {
  Context context(io);
  CLI::App app{"hvmm client commands: drive hvmmd's VMs and their memory over its socket", "hvmm"};
  app.footer(client_exit_status_help());
  add_global_options(app, context);
  bool version = false;
  app.add_flag("--version", version,
               "Print the client's version and, when reachable, the daemon's");
  add_commands(app, context);
  fall_through(app);
  app.require_subcommand(0, 1);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& error) {
    const int status = app.exit(error, io.out, io.err);
    return status == 0 ? kExitOk : kExitBadArguments;
  }
  if (context.action) {
    return context.action();
  }
  if (version) {
    return print_versions(context);
  }
  io.err << app.help();
  return kExitBadArguments;
}

}  // namespace hvmm::client
