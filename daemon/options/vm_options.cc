// Validation of VmOptions. (Interim: forwards to the `hvmm run` validation in vmm/machine
// until that moves here.)
#include "hvmm/daemon/options/vm_options.h"

#include "hvmm/vmm/machine/run_options.h"

namespace hvmm::daemon {

Result<vmm::MachineConfig> make_machine_config(const VmOptions& options,
                                               std::span<const uint8_t> bundled_kernel,
                                               unsigned max_vcpus) {
  vmm::RunOptions run;
  run.kernel = options.kernel;
  run.initrd = options.initrd;
  run.cmdline = options.cmdline;
  run.memory = std::to_string(options.memory_bytes);
  run.vcpus = options.vcpus;
  run.fault_log = options.fault_log;
  run.console_log = options.console_log;
  run.console_log_max = std::to_string(options.console_log_max_bytes);
  run.balloon = std::to_string(options.balloon_target_bytes);
  run.free_page_reporting = options.free_page_reporting;
  run.balloon_stats_interval = std::to_string(options.balloon_stats_interval_seconds);
  run.no_balloon = !options.balloon;
  if (run.no_balloon) {
    run.balloon.clear();
  }
  run.control = options.control_channel;
  run.fault_around = std::to_string(options.fault_around_bytes);
  run.userfaultfd = options.userfaultfd ? "on" : "off";
  run.stats = options.stats_file;
  run.reclaim = options.reclaim_policy;
  run.reclaim_swap = options.reclaim_swap;
  auto config = vmm::make_machine_config(run, bundled_kernel, max_vcpus);
  if (config) {
    config->name = options.name;
    if (options.dirty_tracking && !config->dirty_tracking) {
      config->dirty_tracking = options.dirty_tracking;
    }
  }
  return config;
}

Result<void> check_vcpu_limit(unsigned vcpus, unsigned kvm_max_vcpus) {
  return vmm::check_vcpu_limit(vcpus, kvm_max_vcpus);
}

}  // namespace hvmm::daemon
