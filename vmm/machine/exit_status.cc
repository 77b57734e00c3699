// The help text generated from the exit-status table.
#include "hvmm/vmm/machine/exit_status.h"

#include <fmt/format.h>

namespace hvmm::vmm {

// One aligned line per status, so `hvmm --help` and the README say the same thing.
std::string exit_status_help() {
  std::string text = "Exit status:";
  for (const ExitStatusInfo& info : kExitStatuses) {
    text += fmt::format("\n  {:<6} {:<19} {}", info.status, info.name, info.meaning);
  }
  text +=
      "\nAn argument error (120) is printed as the option and the reason. When hvmm itself ends "
      "the VM (121-125, 128+N) it prints exactly one line on stderr:\n"
      "  hvmm: VM ended by the VMM: REASON (exit status N)";
  return text;
}

}  // namespace hvmm::vmm
