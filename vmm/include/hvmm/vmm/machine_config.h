// MachineConfig: everything one VM is built from, with its files already read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hvmm::vmm {

// MachineConfig is everything a VM is built from; files are already read.
struct MachineConfig {
  std::string name = "run";
  uint32_t vmid = 1;
  std::vector<uint8_t> kernel;
  std::optional<std::vector<uint8_t>> initrd;
  std::string cmdline;
  uint64_t memory_size = uint64_t{128} << 20;
  unsigned vcpus = 1;
  std::string fault_log;      // empty: stderr
  std::string console_log;    // empty: none
  bool console_input = true;  // read stdin when it is a terminal
};

}  // namespace hvmm::vmm
