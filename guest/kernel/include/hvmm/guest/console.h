// The kernel console on COM1 and printk, its formatted printer.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>

namespace hvmm::guest {

// Log levels: a message is printed when its level is <= the `loglevel=` option (default 6).
enum LogLevel : int { kLogError = 3, kLogWarn = 4, kLogInfo = 6, kLogDebug = 7 };

// Initialise COM1 (8N1, FIFO on). Cheap: a handful of port writes.
void console_init();

// Write raw bytes to the console.
void console_write(const char* data, size_t size);

// Take one received byte from COM1 if there is one (LSR data ready); false otherwise.
bool console_read_byte(uint8_t* byte);

// Set the threshold of printk_level().
void console_set_loglevel(int level);

// Format into a buffer; returns the length written (truncated to size - 1, NUL terminated).
// Supports %s %c %d %i %u %x %X %p and the l/ll/z modifiers, width and 0-padding.
size_t vformat(char* buffer, size_t size, const char* fmt, va_list args);

// Format into a buffer (see vformat).
size_t format(char* buffer, size_t size, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Print a formatted message (always shown). Lines from several CPUs do not interleave.
void printk(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Print a formatted message if `level` passes the loglevel threshold.
void printk_level(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Print without taking the console lock (panic path: the lock holder may be the culprit).
void vprintk_unlocked(const char* fmt, va_list args);

}  // namespace hvmm::guest
