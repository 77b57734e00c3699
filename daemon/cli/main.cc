// hvmm: the command-line entry point.
#include <cstdint>
#include <span>

#include "hvmm/daemon/cli/cli.h"

// The bundled kernel, embedded by bundled_kernel.S (see daemon/CMakeLists.txt).
extern "C" const uint8_t hvmm_bundled_kernel_start[];
extern "C" const uint8_t hvmm_bundled_kernel_end[];

// Hand argv and the bundled kernel to the CLI.
int main(int argc, char** argv) {
  std::span<const uint8_t> bundled(hvmm_bundled_kernel_start, hvmm_bundled_kernel_end);
  return hvmm::cli::run_cli(argc, argv, bundled);
}
