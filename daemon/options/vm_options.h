// VmOptions: what one VM is made of, as `hvmm run` and hvmmd's CreateVm both describe it,
// and its validation into a MachineConfig.
//
// The fields are typed (sizes in bytes) and named like hvmm.v1.VmSpec; every error
// make_machine_config() returns starts with the name of the field that is wrong, then a
// colon ("memory_bytes: must be between 2M and 256G (got 4096 bytes)", "kernel: cannot open
// '/x': No such file or directory"), so a gRPC client reads the name of the field it sent.
// The names are field_names.h's; a message may name another field too ("(memory_bytes is
// ... bytes)"). Front ends that spell fields differently (the CLI's --memory) translate the
// names with their own table (daemon/cli/flag_names.h). Everything is checked without KVM,
// in the order a person would fix it, and all of it happens before /dev/kvm is opened; only
// the vCPU count against KVM's own limit needs KVM (`max_vcpus`). The checks, in order:
// memory_bytes (2M..256G, whole pages); vcpus; the balloon fields (each needs `balloon`,
// the target below the RAM size, the stats interval at most a day); cmdline with the
// virtio-mmio announcements (guest_cmdline.h); fault_around_bytes; reclaim_swap needs
// reclaim_policy, which must parse and needs userfaultfd; dirty_tracking against the
// policy's dirty=; the kernel (a regular file no larger than RAM, a PVH ELF that fits);
// the initrd (sized and placed before it is read); then the logs and the stats file are
// opened (vmm/host/log_file.h).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"
#include "hvmm/vmm/machine/machine_config.h"

namespace hvmm::daemon {

// The most vCPUs hvmm supports regardless of KVM: APIC ids are 8 bits in CPUID leaf 1.
inline constexpr unsigned kMaxVcpus = 255;

struct VmOptions {
  std::string name = "run";  // the VM's name in logs and fault records
  std::string kernel;        // empty: the bundled kernel
  std::string initrd;        // empty: none
  std::string cmdline;
  uint64_t memory_bytes = uint64_t{128} << 20;
  unsigned vcpus = 1;
  std::string fault_log;                                        // empty: stderr
  std::string console_log;                                      // empty: none
  uint64_t console_log_max_bytes = vmm::kDefaultConsoleLogMax;  // 0: no cap
  // Devices: the balloon (present unless `balloon` is false) and the control channel.
  bool balloon = true;
  uint64_t balloon_target_bytes = 0;
  bool free_page_reporting = false;
  unsigned balloon_stats_interval_seconds = 0;  // 0: stats only on request
  bool control_channel = false;
  uint64_t fault_around_bytes = uint64_t{2} << 20;  // 4 KiB..2 MiB, a power of two; 0: one page
  bool userfaultfd = true;
  std::string stats_file;  // empty: none
  // Reclaim without the guest's help (reclaim_policy.h syntax; "" is the default policy;
  // none: no reclaim), and the pool's optional swap file.
  std::optional<std::string> reclaim_policy;
  std::string reclaim_swap;  // empty: none
  // KVM dirty tracking (for the API's dirty log); none: only what reclaim's policy asks for.
  // With a reclaim policy that names no dirty=, the policy follows this field; one that names
  // the other kind is an error.
  std::optional<vmm::DirtyTracking> dirty_tracking;
};

// Validate `options`, read the files and open the logs they name. `bundled_kernel` is used
// when `kernel` is empty; `max_vcpus` limits `vcpus` (kMaxVcpus before KVM is open).
Result<vmm::MachineConfig> make_machine_config(const VmOptions& options,
                                               std::span<const uint8_t> bundled_kernel,
                                               unsigned max_vcpus = kMaxVcpus);

// Check only memory_bytes and vcpus (against hvmm's limit), as make_machine_config does: what
// a prepared VM (warm start) and the daemon's `warm-pool` sizes are made of.
Result<void> check_machine_shape(const VmOptions& options);

// Check `vcpus` against KVM's limit (KVM_CAP_MAX_VCPUS) and hvmm's; errors name "vcpus".
Result<void> check_vcpu_limit(unsigned vcpus, unsigned kvm_max_vcpus);

}  // namespace hvmm::daemon
