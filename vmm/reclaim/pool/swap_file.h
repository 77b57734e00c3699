// SwapFile: the file behind a pool at its limit (`--reclaim-swap FILE`), for its coldest
// entries.
//
// The file is the VM's alone: it must be a regular file (created when missing), is locked
// with flock(LOCK_EX|LOCK_NB) so a second VM given the same path is refused, and is truncated
// to 0 when opened (whatever it held, even a 1 TiB sparse file, is forgotten) and when closed.
// Entries are written as they are (compressed, with their checksum) into slots of the pool's
// size classes, in extents of 1 to 4 pages; a freed extent is reused and punched out
// (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), so the file stays sparse. It is the Backing of
// a SlotArena (slot_arena.h): the pool calls it under its lock.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

// One extent of the swap file: its byte offset (the arena knows its size).
struct SwapExtent {
  uint64_t offset = 0;
};

class SwapFile {
 public:
  using Storage = SwapExtent;

  // Create or open `path` as a swap file. Refused, with a message naming the path and the
  // reason: anything but a regular file (a FIFO, a device node, a directory: found by stat(),
  // never opened), a path whose directory is missing, a file another holder has locked.
  static Result<SwapFile> open(const std::string& path);

  SwapFile(SwapFile&&) noexcept = default;
  SwapFile& operator=(SwapFile&&) noexcept;
  ~SwapFile();

  const std::string& path() const { return path_; }

  // An extent of `bytes` (a page multiple): a released one of that size, or one past the end.
  Result<SwapExtent> acquire(uint64_t bytes);
  // Punch `extent` out of the file and keep it for reuse.
  void release(SwapExtent&& extent, uint64_t bytes);

  // Write `data` at `offset`, all of it; an error names the path and the offset.
  Result<void> write(uint64_t offset, std::span<const uint8_t> data);
  // Read `out.size()` bytes at `offset`: a short read or an I/O error is kDataLoss.
  Result<void> read(uint64_t offset, std::span<uint8_t> out) const;

  // The file's allocated bytes (st_blocks), for tests of its sparseness; 0 on error.
  uint64_t allocated_bytes() const;

 private:
  SwapFile(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  // Truncate the file to 0 (the owner is done with it).
  void forget_contents();

  std::string path_;
  UniqueFd fd_;
  uint64_t end_ = 0;                                    // bytes of extents ever handed out
  std::map<uint64_t, std::vector<uint64_t>> released_;  // extent size -> offsets to reuse
};

}  // namespace hvmm::vmm
