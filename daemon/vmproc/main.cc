// hvmm-vm: one VM process of hvmmd (`hvmm-vm --channel-fd N`; README.md).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <span>

#include "hvmm/daemon/vmproc/vm_process.h"
#include "hvmm/vmm/machine/exit_status.h"

// The bundled kernel, embedded by bundled_kernel.S (see daemon/CMakeLists.txt).
extern "C" const uint8_t hvmm_bundled_kernel_start[];
extern "C" const uint8_t hvmm_bundled_kernel_end[];

// Parse the two options and hand over to the VM process; argument errors are status 120.
int main(int argc, char** argv) {
  hvmm::daemon::vmproc::VmProcessOptions options;
  CLI::App app{
      "hvmm-vm: one VM of hvmmd, driven over the channel on --channel-fd "
      "(proto/hvmm/supervisor/v1/channel.proto); not meant to be run by hand"};
  app.add_option("--channel-fd", options.channel_fd,
                 "The daemon's end of the socketpair (AF_UNIX, SOCK_STREAM)")
      ->required()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--test-forbidden-syscall", options.test_forbidden_syscall)->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int status = app.exit(error);
    return status == 0 ? 0 : hvmm::vmm::kExitBadArguments;
  }
  std::span<const uint8_t> bundled(hvmm_bundled_kernel_start, hvmm_bundled_kernel_end);
  return hvmm::daemon::vmproc::run_vm_process(options, bundled);
}
