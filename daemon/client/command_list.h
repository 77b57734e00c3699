// The client commands of `hvmm` (served by hvmm-client), named once: `hvmm` forwards these
// words to hvmm-client and lists them in its help without linking gRPC, and hvmm-client
// declares exactly these subcommands (a test checks both helps against this list).
#pragma once

#include <array>
#include <string_view>

namespace hvmm::client {

// ClientCommand is one top-level word and a line of help for it.
struct ClientCommand {
  std::string_view name;
  std::string_view summary;
};

inline constexpr std::array<ClientCommand, 11> kClientCommands = {{
    {"vm", "Manage hvmmd's VMs: create, start, stop, delete, list, get, console"},
    {"balloon", "Set a VM's balloon target, optionally waiting with progress (balloon set)"},
    {"reclaim", "Run reclaim epochs on a VM now, with progress, or replace its reclaim policy"},
    {"policy", "The host memory policy: show it and its decisions, set it, watch decisions"},
    {"stage2", "Dump a VM's stage-2 map, every page of it (stage2 dump)"},
    {"tlb", "TLB shootdown: stage 1 in the guest, stage 2 in the VMM and KVM (tlb shootdown)"},
    {"notifier", "Watch a VM's MMU-notifier invalidations (notifier watch)"},
    {"faults", "Watch the stage-2 faults of one VM or of all (faults watch)"},
    {"stats", "Show a VM's memory figures"},
    {"health", "Check hvmmd's gRPC health: exit 0 when it serves (for probes and scripts)"},
    {"version", "Show the client's version and, when it is reachable, the daemon's"},
}};

// True when `word` is one of kClientCommands.
constexpr bool is_client_command(std::string_view word) {
  for (const ClientCommand& command : kClientCommands) {
    if (command.name == word) {
      return true;
    }
  }
  return false;
}

// The options every client command takes before or after its words, and whether each takes
// a value (so `hvmm --socket PATH vm list` is still recognised as a client command).
struct ClientGlobalOption {
  std::string_view name;
  bool takes_value;
};
inline constexpr std::array<ClientGlobalOption, 2> kClientGlobalOptions = {{
    {"--socket", true},
    {"--json", false},
}};

}  // namespace hvmm::client
