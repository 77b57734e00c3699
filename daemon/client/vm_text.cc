// Text for VMs.
#include "hvmm/daemon/client/vm_text.h"

#include <fmt/format.h>

#include "hvmm/daemon/args/human.h"

namespace hvmm::client {
namespace {

using hvmm::v1::Vm;

// The balloon's actual over its target, "-" without figures.
std::string balloon_text(const hvmm::v1::MemorySummary& memory) {
  if (memory.balloon_target_bytes() == 0 && memory.balloon_actual_bytes() == 0) {
    return "-";
  }
  return fmt::format("{} / {}", args::human_size(memory.balloon_actual_bytes()),
                     args::human_size(memory.balloon_target_bytes()));
}

// A spec's memory: the summary's figure when running, else the spec's (0: the default).
uint64_t memory_bytes(const Vm& vm) {
  if (vm.memory().memory_bytes() != 0) {
    return vm.memory().memory_bytes();
  }
  return vm.spec().memory_bytes() != 0 ? vm.spec().memory_bytes() : uint64_t{128} << 20;
}

// The spec's fields worth a line each.
void print_spec(std::ostream& out, const hvmm::v1::VmSpec& spec) {
  out << "kernel: " << (spec.kernel().empty() ? "(bundled)" : spec.kernel()) << "\n";
  if (!spec.initrd().empty()) {
    out << "initrd: " << spec.initrd() << "\n";
  }
  out << "cmdline: " << spec.cmdline() << "\n";
  out << "vcpus: " << (spec.vcpus() == 0 ? 1u : spec.vcpus()) << "\n";
  if (spec.balloon().disabled()) {
    out << "balloon device: none\n";
  }
  out << "reclaim policy: "
      << (spec.has_reclaim_policy() ? "\"" + spec.reclaim_policy() + "\"" : std::string("none"))
      << "\n";
  if (!spec.dirty_tracking().empty()) {
    out << "dirty tracking: " << spec.dirty_tracking() << "\n";
  }
  if (spec.has_policy()) {
    const hvmm::v1::VmPolicySpec& policy = spec.policy();
    out << "host policy: "
        << (policy.exempt()
                ? std::string("exempt")
                : fmt::format("priority {}, floor {}", policy.priority(),
                              policy.floor_bytes() == 0 ? std::string("a quarter of RAM")
                                                        : args::human_size(policy.floor_bytes())))
        << "\n";
  }
  out << "control channel: "
      << (!spec.has_control_channel() || spec.control_channel() ? "yes" : "no") << "\n";
}

}  // namespace

std::string vm_state_word(hvmm::v1::VmState state) {
  return enum_word(hvmm::v1::VmState_Name(state), "VM_STATE_");
}

std::string vm_exit_text(const hvmm::v1::VmExit& exit) {
  std::string text;
  if (exit.has_status()) {
    text = fmt::format("exit status {}", exit.status());
  } else if (exit.has_signal()) {
    text = fmt::format("killed by signal {}", exit.signal());
  }
  if (!exit.reason().empty()) {
    text += (text.empty() ? "" : ": ") + exit.reason();
  }
  return text;
}

std::string vm_summary_line(const Vm& vm) {
  std::string line = fmt::format("{}: {}", vm.name(), vm_state_word(vm.state()));
  if (vm.state() == hvmm::v1::VM_STATE_RUNNING || vm.pid() != 0) {
    line += fmt::format(" (vmid {}, pid {})", vm.vmid(), vm.pid());
  } else if (vm.has_exit() && !vm_exit_text(vm.exit()).empty()) {
    line += fmt::format(" ({})", vm_exit_text(vm.exit()));
  }
  return line;
}

Table vm_table(const hvmm::v1::ListVmsResponse& list) {
  Table table({"NAME", "STATE", "VMID", "PID", "MEMORY", "RSS", "BALLOON"});
  for (const Vm& vm : list.vms()) {
    const bool running = vm.state() == hvmm::v1::VM_STATE_RUNNING;
    table.add({vm.name(), vm_state_word(vm.state()), vm.vmid() ? std::to_string(vm.vmid()) : "-",
               vm.pid() ? std::to_string(vm.pid()) : "-", args::human_size(memory_bytes(vm)),
               running ? args::human_size(vm.memory().host_rss_bytes()) : "-",
               running ? balloon_text(vm.memory()) : "-"});
  }
  return table;
}

void print_vm(std::ostream& out, const Vm& vm) {
  out << "name: " << vm.name() << "\n";
  out << "state: " << vm_state_word(vm.state()) << "\n";
  if (vm.vmid() != 0) {
    out << "vmid: " << vm.vmid() << " (generation " << vm.vmid_generation() << ")\n";
  }
  if (vm.pid() != 0) {
    out << "pid: " << vm.pid() << "\n";
  }
  out << "memory: " << args::human_size(memory_bytes(vm)) << "\n";
  if (vm.has_memory() && vm.memory().host_rss_bytes() != 0) {
    out << "host rss: " << args::human_size(vm.memory().host_rss_bytes()) << "\n";
    out << "resident: " << args::human_size(vm.memory().resident_bytes()) << "\n";
    out << "balloon: " << balloon_text(vm.memory()) << "\n";
  }
  print_spec(out, vm.spec());
  out << "created: " << format_time(vm.created_unix_ns()) << "\n";
  if (vm.started_unix_ns() != 0) {
    out << "started: " << format_time(vm.started_unix_ns()) << "\n";
  }
  if (vm.has_exit()) {
    out << "exit: " << vm_exit_text(vm.exit()) << " at " << format_time(vm.exit().time_unix_ns())
        << "\n";
    for (const std::string& line : vm.exit().last_console_lines()) {
      out << "  | " << line << "\n";
    }
  }
}

}  // namespace hvmm::client
