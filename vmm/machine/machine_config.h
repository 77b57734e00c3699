// MachineConfig: everything one VM is built from, with its files already read and its logs
// already open (so nothing that can fail for a bad argument is left for after the VM exists).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/vmm/host/log_file.h"

namespace hvmm::vmm {

// The default cap of --console-log (--console-log-max): 64 MiB.
inline constexpr uint64_t kDefaultConsoleLogMax = uint64_t{64} << 20;

// MachineConfig is everything a VM is built from; it is move-only (it owns the log fds).
struct MachineConfig {
  std::string name = "run";
  uint32_t vmid = 1;
  std::vector<uint8_t> kernel;
  std::optional<std::vector<uint8_t>> initrd;
  std::string cmdline;
  uint64_t memory_size = uint64_t{128} << 20;
  unsigned vcpus = 1;
  std::optional<LogFile> fault_log;                  // none: stderr
  std::optional<LogFile> console_log;                // none: stdout only
  uint64_t console_log_max = kDefaultConsoleLogMax;  // 0: no cap
  bool console_input = true;                         // read stdin when it is a terminal
};

}  // namespace hvmm::vmm
