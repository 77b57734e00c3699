// Opening log destinations without blocking, and writing to them without stalling the VM.
#include "hvmm/vmm/host/log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "hvmm/vmm/boot/input_file.h"

namespace hvmm::vmm {
namespace {

// True for /dev/null (character device 1:3).
bool is_dev_null(dev_t rdev) {
  return ::major(rdev) == 1 && ::minor(rdev) == 3;
}

// True for the character devices Linux uses for terminals: virtual consoles and serial ports
// (major 4), /dev/tty and /dev/console (major 5; not /dev/ptmx, 5:2, whose open makes a new
// pseudo-terminal) and pseudo-terminal slaves (136-143).
bool is_terminal_device(dev_t rdev) {
  unsigned major = ::major(rdev);
  return major == 4 || (major == 5 && ::minor(rdev) != 2) || (major >= 136 && major <= 143);
}

// Refuse what stat() says cannot be a log, before anything is opened.
Result<void> check_log_path_type(const struct stat& info, const std::string& path,
                                 std::string_view field) {
  if (S_ISREG(info.st_mode) || S_ISFIFO(info.st_mode)) {
    return Ok();
  }
  if (S_ISCHR(info.st_mode)) {
    if (is_dev_null(info.st_rdev) || is_terminal_device(info.st_rdev)) {
      return Ok();
    }
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: '{}' is a character device ({}:{}) that is neither a terminal nor "
                      "/dev/null",
                      field, path, ::major(info.st_rdev), ::minor(info.st_rdev));
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "{}: '{}' is {}: give a regular file, a FIFO with a reader, a terminal or "
                    "/dev/null",
                    field, path, describe_file_type(info.st_mode));
}

// The error of a failed open(), with the FIFO case spelled out.
Error open_failed(int error, bool fifo, const std::string& path, std::string_view field) {
  if (error == ENXIO && fifo) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: '{}' is a FIFO with no reader: start its reader first (hvmm does not "
                      "wait for one)",
                      field, path);
  }
  return make_error(ErrorCode::kInvalidArgument, "{}: cannot open '{}': {}", field, path,
                    std::strerror(error));
}

// What the opened descriptor is; regular files go back to blocking writes.
Result<LogFileKind> classify_opened(int fd, const std::string& path, std::string_view field) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return make_error(ErrorCode::kInvalidArgument, "{}: cannot stat '{}': {}", field, path,
                      std::strerror(errno));
  }
  HVMM_TRY(check_log_path_type(info, path, field));
  if (S_ISREG(info.st_mode)) {
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return LogFileKind::kRegular;
  }
  if (S_ISFIFO(info.st_mode)) {
    return LogFileKind::kFifo;
  }
  if (is_dev_null(info.st_rdev)) {
    return LogFileKind::kNull;
  }
  if (::isatty(fd) == 1) {
    return LogFileKind::kTerminal;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "{}: '{}' is a character device that is not a terminal", field, path);
}

}  // namespace

// Names used in messages and docs.
const char* log_file_kind_name(LogFileKind kind) {
  switch (kind) {
    case LogFileKind::kRegular:
      return "regular file";
    case LogFileKind::kFifo:
      return "FIFO";
    case LogFileKind::kTerminal:
      return "terminal";
    case LogFileKind::kNull:
      return "/dev/null";
  }
  return "log";
}

// stat, open without blocking, fstat: see log_file.h for what is accepted.
Result<LogFile> open_log_file(const std::string& path, std::string_view field, LogOpenMode mode) {
  struct stat info {};
  bool exists = ::stat(path.c_str(), &info) == 0;
  if (!exists && errno != ENOENT) {
    return open_failed(errno, false, path, field);
  }
  if (exists) {
    HVMM_TRY(check_log_path_type(info, path, field));
  }
  int flags = O_WRONLY | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  flags |= mode == LogOpenMode::kTruncate ? O_TRUNC : O_APPEND;
  UniqueFd fd(::open(path.c_str(), flags, 0644));
  if (!fd.valid()) {
    return open_failed(errno, exists && S_ISFIFO(info.st_mode), path, field);
  }
  auto kind = classify_opened(fd.get(), path, field);
  HVMM_TRY(kind);
  return LogFile{std::move(fd), *kind, path, std::string(field)};
}

// A full FIFO or terminal (EAGAIN), a vanished reader (EPIPE) or an I/O error ends the write;
// the caller counts the rest as dropped.
size_t write_log(const LogFile& file, std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(file.fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    done += static_cast<size_t>(n);
    if (file.kind != LogFileKind::kRegular) {
      break;
    }
  }
  return done;
}

}  // namespace hvmm::vmm
