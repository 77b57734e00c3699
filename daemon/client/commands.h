// The client's command groups, each declaring its CLI11 subcommands on the top-level app.
// A selected command sets Context::action, which run_client() runs after parsing.
#pragma once

#include <CLI/CLI.hpp>

#include "hvmm/daemon/client/context.h"

namespace hvmm::client {

// vm create / start / stop / delete / list / get / console.
void add_vm_commands(CLI::App& app, Context& context);

// balloon set.
void add_balloon_command(CLI::App& app, Context& context);

// reclaim (epochs, --set-policy).
void add_reclaim_commands(CLI::App& app, Context& context);

// policy, policy set, policy watch: the host memory policy.
void add_policy_commands(CLI::App& app, Context& context);

// stats.
void add_stats_command(CLI::App& app, Context& context);

// stage2 dump.
void add_stage2_commands(CLI::App& app, Context& context);

// tlb shootdown.
void add_tlb_commands(CLI::App& app, Context& context);

// notifier watch, faults watch.
void add_watch_commands(CLI::App& app, Context& context);

// health (the daemon's gRPC health as an exit status, for probes).
void add_health_command(CLI::App& app, Context& context);

// version (and the top-level --version).
void add_version_command(CLI::App& app, Context& context);
int print_versions(Context& context);

// Declare the top-level command `name` of kClientCommands, with its summary from there.
CLI::App* add_top_command(CLI::App& app, std::string_view name);

// Declare a command's positional NAME (the VM it acts on).
CLI::Option* add_vm_name(CLI::App& command, std::string& name);

}  // namespace hvmm::client
