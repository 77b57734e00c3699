// Opening, size-checking and reading the input files of a VM.
#include "hvmm/vmm/boot/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace hvmm::vmm {
namespace {

// The error for a path that cannot be stat'ed or opened.
Error cannot_open(std::string_view field, const std::string& path, int error) {
  return make_error(error == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument,
                    "{}: cannot open '{}': {}", field, path, std::strerror(error));
}

// The error for a path that is not a regular file.
Error not_regular(std::string_view field, const std::string& path, unsigned mode) {
  return make_error(ErrorCode::kInvalidArgument, "{}: '{}' is {}, not a regular file", field, path,
                    describe_file_type(mode));
}

}  // namespace

// The article-prefixed name of each file type stat() reports.
const char* describe_file_type(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a FIFO (named pipe)";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFSOCK:
      return "a socket";
    case S_IFLNK:
      return "a symbolic link";
    default:
      return "a file of unknown type";
  }
}

// The largest binary unit that divides the count exactly, so nothing is rounded away.
std::string describe_size(uint64_t bytes) {
  const char* units[] = {"K", "M", "G", "T", "P", "E"};
  int unit = -1;
  uint64_t value = bytes;
  while (value != 0 && value % 1024 == 0 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  if (unit < 0) {
    return fmt::format("{} bytes", bytes);
  }
  return fmt::format("{} bytes ({}{})", bytes, value, units[unit]);
}

// stat() first so FIFOs and device nodes are never opened, then open and fstat() again.
Result<InputFile> open_input_file(const std::string& path, std::string_view field) {
  struct stat before {};
  if (::stat(path.c_str(), &before) != 0) {
    return cannot_open(field, path, errno);
  }
  if (!S_ISREG(before.st_mode)) {
    return not_regular(field, path, before.st_mode);
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd.valid()) {
    return cannot_open(field, path, errno);
  }
  struct stat after {};
  if (::fstat(fd.get(), &after) != 0) {
    return cannot_open(field, path, errno);
  }
  if (!S_ISREG(after.st_mode)) {
    return not_regular(field, path, after.st_mode);
  }
  return InputFile{std::move(fd), path, std::string(field), static_cast<uint64_t>(after.st_size)};
}

// Both sizes in the message: the user fixes it with more memory or a smaller file.
Result<void> check_fits_in_ram(const InputFile& file, uint64_t ram_size) {
  if (file.size > ram_size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: '{}' is {}, larger than the guest's RAM of {} (raise memory_bytes or "
                      "use a smaller file)",
                      file.field, file.path, describe_size(file.size), describe_size(ram_size));
  }
  return Ok();
}

// A file that shrank since fstat() is an error; one that grew is read to its old size.
Result<std::vector<uint8_t>> read_input_file(const InputFile& file) {
  std::vector<uint8_t> data;
  try {
    data.resize(static_cast<size_t>(file.size));
  } catch (const std::bad_alloc&) {
    return make_error(ErrorCode::kInvalidArgument, "{}: '{}': cannot allocate {} to read it",
                      file.field, file.path, describe_size(file.size));
  }
  size_t done = 0;
  while (done < data.size()) {
    size_t chunk = std::min(kInputReadChunk, data.size() - done);
    ssize_t n = ::read(file.fd.get(), data.data() + done, chunk);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return make_error(
          ErrorCode::kInvalidArgument, "{}: cannot read '{}': {}", file.field, file.path,
          n == 0 ? fmt::format("unexpected end of file after {} of {} bytes", done, data.size())
                 : std::string(std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  return data;
}

// The three steps in order; nothing is allocated for a file that cannot fit.
Result<std::vector<uint8_t>> read_file(const std::string& path, std::string_view field,
                                       uint64_t ram_size) {
  auto file = open_input_file(path, field);
  HVMM_TRY(file);
  HVMM_TRY(check_fits_in_ram(*file, ram_size));
  return read_input_file(*file);
}

}  // namespace hvmm::vmm
