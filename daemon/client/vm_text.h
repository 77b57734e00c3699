// VMs as people read them: `vm list`'s table, `vm get`'s fields, one-line states.
#pragma once

#include <ostream>
#include <string>

#include "hvmm/daemon/client/text.h"
#include "hvmm/v1/vm.pb.h"

namespace hvmm::client {

// "running", "stopped", ... for a VmState.
std::string vm_state_word(hvmm::v1::VmState state);

// One line: "web: running (vmid 3, pid 1234)", "web: stopped (exit status 0: reason)".
std::string vm_summary_line(const hvmm::v1::Vm& vm);

// How a VM ended: "exit status 0", "killed by signal 9", then the reason.
std::string vm_exit_text(const hvmm::v1::VmExit& exit);

// The table of `vm list`: NAME STATE VMID PID MEMORY RSS BALLOON.
Table vm_table(const hvmm::v1::ListVmsResponse& list);

// Every field of `vm`, one "key: value" line each, for `vm get` and `vm create`.
void print_vm(std::ostream& out, const hvmm::v1::Vm& vm);

}  // namespace hvmm::client
