// The swap file: opening it safely, its extents, and positional I/O on it.
#include "hvmm/vmm/reclaim/pool/swap_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvmm::vmm {
namespace {

// What a stat() mode is, for a refusal.
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISSOCK(mode))
    return "a socket";
  return "not a regular file";
}

// The refusal of `path` for `reason`.
Error refuse(const std::string& path, const std::string& reason) {
  return make_error(ErrorCode::kInvalidArgument, "swap file {}: {}", path, reason);
}

}  // namespace

Result<SwapFile> SwapFile::open(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return refuse(path, std::string(file_kind(st.st_mode)) + ", not a regular file");
  }
  // O_NONBLOCK and O_NOCTTY: should the path become a FIFO or a terminal after the stat(),
  // opening it neither waits nor takes a controlling terminal; fstat() then refuses it.
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600));
  if (!fd.valid()) {
    const int error = errno;
    if (error == ENOENT) {
      return refuse(path, "its directory does not exist");
    }
    return refuse(path, std::string("cannot open: ") + std::strerror(error));
  }
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return refuse(path, std::string(file_kind(st.st_mode)) + ", not a regular file");
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    return refuse(path, error == EWOULDBLOCK ? "locked by another holder (another VM's swap file?)"
                                             : std::string("cannot lock: ") + std::strerror(error));
  }
  if (::ftruncate(fd.get(), 0) != 0) {
    return refuse(path, std::string("cannot truncate: ") + std::strerror(errno));
  }
  return SwapFile(path, std::move(fd));
}

SwapFile& SwapFile::operator=(SwapFile&& other) noexcept {
  if (this != &other) {
    forget_contents();
    path_ = std::move(other.path_);
    fd_ = std::move(other.fd_);
    end_ = other.end_;
    released_ = std::move(other.released_);
  }
  return *this;
}

SwapFile::~SwapFile() {
  forget_contents();
}

void SwapFile::forget_contents() {
  if (fd_.valid()) {
    // Nothing to do on failure: the entries are meaningless without the pool's index.
    [[maybe_unused]] const int ignored = ::ftruncate(fd_.get(), 0);
  }
}

Result<SwapExtent> SwapFile::acquire(uint64_t bytes) {
  auto released = released_.find(bytes);
  if (released != released_.end() && !released->second.empty()) {
    const uint64_t offset = released->second.back();
    released->second.pop_back();
    return SwapExtent{offset};
  }
  const uint64_t offset = end_;
  end_ += bytes;
  return SwapExtent{offset};
}

void SwapFile::release(SwapExtent&& extent, uint64_t bytes) {
  // A file system without hole punching keeps the bytes: the extent is still reused.
  [[maybe_unused]] const int punched =
      ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(extent.offset), static_cast<off_t>(bytes));
  released_[bytes].push_back(extent.offset);
}

Result<void> SwapFile::write(uint64_t offset, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                               static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return make_error(ErrorCode::kResourceExhausted,
                        "swap file {}: write of {} bytes at {:#x}: {}", path_, data.size(), offset,
                        n < 0 ? std::strerror(errno) : "no progress");
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<void> SwapFile::read(uint64_t offset, std::span<uint8_t> out) const {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return make_error(ErrorCode::kDataLoss, "swap file {}: read of {} bytes at {:#x}: {}", path_,
                        out.size(), offset, std::strerror(errno));
    }
    if (n == 0) {
      return make_error(ErrorCode::kDataLoss,
                        "swap file {}: short read at {:#x}: {} of {} bytes (file truncated?)",
                        path_, offset, done, out.size());
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

uint64_t SwapFile::allocated_bytes() const {
  struct stat st {};
  return ::fstat(fd_.get(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

}  // namespace hvmm::vmm
