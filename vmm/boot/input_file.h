// Input files of a VM (its kernel and initrd): regular files only, read with bounds.
//
// A path is checked with stat() before anything is opened, so a FIFO (whose open() would wait
// for a writer) or a device node (whose open() can have side effects, e.g. a tape rewinding)
// is refused without being opened. The file is then opened O_RDONLY|O_NONBLOCK|O_NOCTTY|
// O_CLOEXEC and checked again with fstat(), so a path swapped in between is caught too. Its
// size is known from fstat() before any byte is allocated: callers refuse a file larger than
// the guest's RAM (a 1 TiB sparse file costs nothing on disk), then the bytes are read in
// bounded chunks. Every error starts with the configuration field ("kernel: ...") and names
// the path and the reason.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

// The largest read() issued while reading an input file.
inline constexpr size_t kInputReadChunk = size_t{1} << 20;

// InputFile is an opened regular file with its size at open time.
struct InputFile {
  UniqueFd fd;
  std::string path;
  std::string field;  // "kernel", "initrd": leads its errors
  uint64_t size = 0;
};

// "a FIFO", "a directory", "a character device", ... for a st_mode.
const char* describe_file_type(unsigned mode);

// "134217728 bytes (128M)": a byte count with its binary size when it has a short one.
std::string describe_size(uint64_t bytes);

// Open `path` for `field` after checking that it is a regular file.
Result<InputFile> open_input_file(const std::string& path, std::string_view field);

// Refuse a file larger than `ram_size`, the guest's RAM, naming both sizes.
Result<void> check_fits_in_ram(const InputFile& file, uint64_t ram_size);

// Read exactly file.size bytes, kInputReadChunk at a time.
Result<std::vector<uint8_t>> read_input_file(const InputFile& file);

// Open, check against `ram_size` and read a whole input file.
Result<std::vector<uint8_t>> read_file(const std::string& path, std::string_view field,
                                       uint64_t ram_size);

}  // namespace hvmm::vmm
