// Log destinations of a VM (its console log, fault log and stats file), opened before any VM
// exists.
//
// Accepted: a regular file (created if missing; the console log is truncated, the fault log
// appended to), a FIFO that already has a reader, a terminal (virtual console, serial port or
// pseudo-terminal) and /dev/null. Refused, with the field, the path and the reason: a FIFO
// with no reader (open(O_WRONLY|O_NONBLOCK) fails with ENXIO at once instead of waiting), a
// directory, a socket, a block device and any other character device. The path is checked
// with stat() before it is opened, so a device node that is refused is never opened (opening
// one can have side effects); the descriptor is checked again with fstat() after opening.
//
// Writes never block the VM for long: a regular file is written normally; a FIFO or a
// terminal stays O_NONBLOCK, and what does not fit when it is full (its reader is slow or
// stopped) is dropped and counted by the writer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

// LogFileKind is what a log destination turned out to be.
enum class LogFileKind { kRegular, kFifo, kTerminal, kNull };

// "regular file", "FIFO", "terminal", "/dev/null".
const char* log_file_kind_name(LogFileKind kind);

// LogOpenMode says what happens to an existing regular file.
enum class LogOpenMode { kTruncate, kAppend };

// LogFile is an opened log destination.
struct LogFile {
  UniqueFd fd;
  LogFileKind kind = LogFileKind::kRegular;
  std::string path;
  // The configuration field it is for ("console_log", "fault_log"), leading its errors as
  // every configuration error does (daemon/options/vm_options.h).
  std::string field;
};

// Open `path` as the destination of `field`, without blocking. Errors read
// "field: 'path' is ..." or "field: cannot open 'path': reason".
Result<LogFile> open_log_file(const std::string& path, std::string_view field, LogOpenMode mode);

// Write `bytes` to `file`: all of them for a regular file (retrying short writes), as many as
// fit without blocking for a FIFO or terminal. Returns how many were written.
size_t write_log(const LogFile& file, std::span<const uint8_t> bytes);

}  // namespace hvmm::vmm
