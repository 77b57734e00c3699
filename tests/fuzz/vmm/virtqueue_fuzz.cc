// libFuzzer entry point of the virtqueue parser: a violated property aborts.
#include <cstdio>
#include <cstdlib>

#include "virtio_fuzz_check.h"

// Check one input (libFuzzer's interface).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string problem = hvmm::vmm::fuzz::check_virtqueue_input({data, size});
  if (!problem.empty()) {
    std::fprintf(stderr, "virtqueue property violated: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
