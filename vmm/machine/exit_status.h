// Exit statuses of `hvmm run`: the one table the code, the CLI help and vmm/README.md use.
//
// 0-255 is normally the byte the guest wrote to I/O port 0xf4. hvmm's own outcomes use the
// values below; guests that want unambiguous results should avoid 120-127 themselves. When
// hvmm chooses the status it says so on stderr (see vm_stop.h), so a guest that writes 122
// can still be told apart from a triple fault. The README's table is checked against
// kExitStatuses by a unit test, and the help footer is generated from it.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace hvmm::vmm {

inline constexpr int kExitBadArguments = 120;       // invalid option, file or kernel; no VM made
inline constexpr int kExitSetupFailed = 121;        // KVM unavailable or VM creation failed
inline constexpr int kExitTripleFault = 122;        // a vCPU triple faulted (KVM_EXIT_SHUTDOWN)
inline constexpr int kExitInternalError = 123;      // failed entry, KVM internal error, bad exit
inline constexpr int kExitGuestShutdown = 124;      // guest asked for shutdown/reset, not 0xf4
inline constexpr int kExitFaultHandlerStuck = 125;  // userfaultfd handler stuck or dead
inline constexpr int kExitSignalBase = 128;         // 128 + signal number (SIGINT, SIGTERM)

// The I/O port whose written byte ends the VM with that status (QEMU's isa-debug-exit
// location; QEMU reports (V << 1) | 1 where hvmm reports V).
inline constexpr unsigned short kExitPort = 0xf4;

// ExitStatusInfo is one row of the exit-status table.
struct ExitStatusInfo {
  std::string_view status;   // as documented: "120", or a range such as "0-255", "128+N"
  std::string_view name;     // short name, for scripts and messages
  std::string_view meaning;  // one sentence for people
};

// Every exit status of `hvmm run`, in the order the README and the help list them.
inline constexpr std::array<ExitStatusInfo, 8> kExitStatuses = {{
    {"0-255", "guest",
     "the byte V the guest wrote to I/O port 0xf4 (QEMU's isa-debug-exit reports (V<<1)|1); "
     "hvmm prints nothing of its own"},
    {"120", "bad-arguments",
     "invalid argument, file or kernel, found before /dev/kvm is opened: nothing was created"},
    {"121", "setup-failed",
     "KVM unavailable (missing /dev/kvm, permission, capability) or VM setup failed"},
    {"122", "triple-fault", "triple fault (KVM_EXIT_SHUTDOWN); a register dump is printed"},
    {"123", "internal-error",
     "failed VM entry, KVM internal error or an unexpected exit; a register dump is printed"},
    {"124", "guest-shutdown", "the guest asked for shutdown/reset without writing port 0xf4"},
    {"125", "fault-handler-stuck",
     "a guest-memory fault stayed unresolved past the watchdog's timeout; the IPA is named"},
    {"128+N", "signal", "stopped by signal N (SIGINT 130, SIGTERM 143)"},
}};

// The row whose status is the single code `code`, or nullptr (guest bytes, signals).
constexpr const ExitStatusInfo* find_exit_status(std::string_view code) {
  for (const ExitStatusInfo& info : kExitStatuses) {
    if (info.status == code) {
      return &info;
    }
  }
  return nullptr;
}

// True when the table has a row `code` named `name` (no pointers: usable in static_assert
// under the sanitizers, where GCC does not fold pointer comparisons).
constexpr bool has_exit_status(std::string_view code, std::string_view name) {
  for (const ExitStatusInfo& info : kExitStatuses) {
    if (info.status == code && info.name == name) {
      return true;
    }
  }
  return false;
}

// Each named constant has its row, so the table cannot lose one.
static_assert(has_exit_status("120", "bad-arguments"));
static_assert(has_exit_status("121", "setup-failed"));
static_assert(has_exit_status("122", "triple-fault"));
static_assert(has_exit_status("123", "internal-error"));
static_assert(has_exit_status("124", "guest-shutdown"));
static_assert(has_exit_status("125", "fault-handler-stuck"));

// The CLI help footer: "Exit status:" and one line per row of kExitStatuses.
std::string exit_status_help();

}  // namespace hvmm::vmm
