// MachineConfig: everything one VM is built from, with its files already read and its logs
// already open (so nothing that can fail for a bad argument is left for after the VM exists).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/vmm/host/log_file.h"
#include "hvmm/vmm/reclaim/dirty/dirty_source.h"
#include "hvmm/vmm/reclaim/pool/swap_file.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"

namespace hvmm::vmm {

// The default cap of --console-log (--console-log-max): 64 MiB.
inline constexpr uint64_t kDefaultConsoleLogMax = uint64_t{64} << 20;

// DeviceConfig: the virtio devices of a VM (the hvmm run flags --balloon,
// --free-page-reporting and --balloon-stats-interval fill it). Each present device gets one
// virtio-mmio window and IRQ (devices/virtio/mmio_layout.h) announced on the command line.
struct DeviceConfig {
  bool balloon = true;
  uint64_t balloon_target = 0;       // initial target in bytes (rounded down to pages)
  bool free_page_reporting = false;  // offer VIRTIO_BALLOON_F_REPORTING
  // How often the device asks the guest for fresh stats; 0: only on request.
  std::chrono::seconds balloon_stats_interval{0};
  // The control channel (devices/control). Off by default: a guest kernel that finds it serves
  // the host's requests until told to shut down, so it is only for a host that will drive it
  // (the daemon, tests through Machine::control_channel()); `hvmm run` alone has none.
  bool control_channel = false;
};

// FaultConfig: how guest RAM that is not in host memory is brought back (vmm/fault).
struct FaultConfig {
  // Register guest RAM with userfaultfd and resolve first touches and refaults from page
  // state; false leaves them to the host kernel (shmem fills holes with zeros by itself),
  // the reference the first-touch benchmark compares against.
  bool userfaultfd = true;
  // The largest fault-around window (--fault-around); 0: one page per fault.
  uint64_t fault_around_max = uint64_t{2} << 20;
};

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
  DeviceConfig devices;
  FaultConfig faults;
  std::optional<LogFile> stats_file;  // --stats: the memory figures as JSON at exit
  // --reclaim: the host takes cold pages back without the guest's help (vmm/reclaim);
  // none: no reclaim. Needs faults.userfaultfd (refaults are served through it).
  std::optional<ReclaimPolicy> reclaim;
  // --reclaim-swap: the file behind the pool for its coldest entries, opened (and checked)
  // with the arguments; none: the pool refuses entries at its limit.
  std::optional<SwapFile> reclaim_swap;
  // KVM dirty tracking for reclaim (Machine::dirty_source()); none: no dirty-log capability,
  // no memslot flag, nothing tracked.
  std::optional<DirtyTracking> dirty_tracking;
  uint32_t dirty_ring_entries = kDefaultDirtyRingEntries;  // per vCPU, with kRing
};

}  // namespace hvmm::vmm
