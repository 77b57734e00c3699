// libFuzzer entry point of the ELF loader fuzz target: any property elf_loader_check.h lists
// that does not hold aborts, so libFuzzer keeps the input as a crash.
#include <cstdio>
#include <cstdlib>

#include "elf_loader_check.h"

// Check one input (libFuzzer's interface).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string problem = hvmm::vmm::fuzz::check_elf_input({data, size});
  if (!problem.empty()) {
    std::fprintf(stderr, "ELF loader property violated: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
