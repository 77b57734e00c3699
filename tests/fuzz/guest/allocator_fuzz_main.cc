// A standalone driver for fuzz targets built without libFuzzer: runs the files named on the
// command line, or `--runs=N` pseudo-random inputs (fixed seed, or `--seed=S`).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// Parse options, then run files or random inputs.
int main(int argc, char** argv) {
  unsigned long runs = 1000;
  unsigned long seed = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--runs=", 7) == 0) {
      runs = std::strtoul(argv[i] + 7, nullptr, 10);
    } else if (std::strncmp(argv[i], "--seed=", 7) == 0) {
      seed = std::strtoul(argv[i] + 7, nullptr, 10);
    } else {
      files.emplace_back(argv[i]);
    }
  }
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  if (!files.empty()) {
    return 0;
  }
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> data;
  for (unsigned long run = 0; run < runs; ++run) {
    data.resize(rng() % 2048);
    for (uint8_t& byte : data) {
      byte = static_cast<uint8_t>(rng());
    }
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::printf("%lu random inputs passed (seed %lu)\n", runs, seed);
  return 0;
}
