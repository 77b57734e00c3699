// RunOptions: the arguments of `hvmm run`, and their validation into a MachineConfig.
//
// Everything that can be checked without creating a VM is checked here, in the order a
// person would fix it, and each error names the option and the reason: sizes (K/M/G
// suffixes), the vCPU count, the devices (--balloon below the RAM size, the stats interval,
// no balloon option with --no-balloon), the command line's length with the devices'
// announcements, the console log cap, the reclaim policy (its syntax, --reclaim-swap only
// with --reclaim, --reclaim only with userfaultfd), the files
// (regular files no larger than the guest's RAM: see input_file.h), the kernel's format and
// placement, the initrd's placement, and the log files, which are opened here (see
// log_file.h). No KVM access is needed, so all of it is unit tested and all of it happens
// before /dev/kvm is opened; only the vCPU count against KVM's own limit
// (check_vcpu_limit) needs KVM. Every error here is exit status 120.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"
#include "hvmm/vmm/machine/machine_config.h"

namespace hvmm::vmm {

// The most vCPUs hvmm supports regardless of KVM: APIC ids are 8 bits in CPUID leaf 1.
inline constexpr unsigned kMaxVcpus = 255;

struct RunOptions {
  std::string kernel;  // empty: the bundled kernel
  std::string initrd;  // empty: none
  std::string cmdline;
  std::string memory = "128M";
  unsigned vcpus = 1;
  std::string fault_log;
  std::string console_log;
  std::string console_log_max = "64M";  // 0: no cap
  // Devices: the balloon (its initial target, free page reporting, the stats interval in
  // seconds; present unless turned off) and the control channel (only when asked for).
  std::string balloon;  // empty: target 0
  bool free_page_reporting = false;
  std::string balloon_stats_interval = "0";  // 0: stats only on request
  bool no_balloon = false;
  bool control = false;             // --control: add the control channel
  std::string fault_around = "2M";  // --fault-around: 4K..2M, a power of two; 0: one page
  std::string userfaultfd = "on";   // --userfaultfd on|off
  std::string stats;                // --stats FILE: none when empty
  // Reclaim without the guest's help: the policy (reclaim_policy.h; "" is the default
  // policy, nothing is no reclaim) and the pool's optional swap file.
  std::optional<std::string> reclaim;  // --reclaim POLICY
  std::string reclaim_swap;            // --reclaim-swap FILE: none when empty
};

// Parse "4096", "64K", "128M", "2G" (binary units, case-insensitive, optional "iB"/"B").
Result<uint64_t> parse_size(std::string_view text);

// Validate `options`, read the files and open the logs they name. `bundled_kernel` is used
// when no --kernel is given; `max_vcpus` limits --vcpus (kMaxVcpus before KVM is open).
Result<MachineConfig> make_machine_config(const RunOptions& options,
                                          std::span<const uint8_t> bundled_kernel,
                                          unsigned max_vcpus = kMaxVcpus);

// Check that `cmdline` fits the boot data once the virtio-mmio announcements of `devices`
// (`virtio_mmio.device=4K@0xd0000000:5 ...`, appended by the Machine) are added to it.
Result<void> check_guest_cmdline(const std::string& cmdline, const DeviceConfig& devices);

// Check --vcpus against KVM's limit (KVM_CAP_MAX_VCPUS) and hvmm's.
Result<void> check_vcpu_limit(unsigned vcpus, unsigned kvm_max_vcpus);

}  // namespace hvmm::vmm
