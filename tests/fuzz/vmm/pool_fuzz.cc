// libFuzzer entry point of the pool's entry decoder: a violated property aborts.
#include <cstdio>
#include <cstdlib>

#include "pool_fuzz_check.h"

// Check one input (libFuzzer's interface).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string problem = hvmm::vmm::fuzz::check_pool_entry_input({data, size});
  if (!problem.empty()) {
    std::fprintf(stderr, "pool decoder property violated: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
