// COM1 console and printk. Output is written with `rep outsb` and no wait on the line
// status register: every VMM (and QEMU) accepts THR writes immediately, and polling would
// cost emulated instructions per character.
#include "hvmm/guest/console.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/mm/spinlock.h"

namespace hvmm::guest {
namespace {

constexpr uint16_t kCom1 = 0x3f8;
int g_loglevel = kLogInfo;
mm::SpinLock g_console_lock;

// An append-only writer into a fixed buffer that silently truncates.
struct Sink {
  char* out;
  size_t size;
  size_t len = 0;
  // Append one character if room remains (keeping space for the NUL).
  void put(char c) {
    if (len + 1 < size)
      out[len] = c;
    ++len;
  }
};

// Append an unsigned number in `base` with minimum width and padding character.
void put_number(Sink& sink, uint64_t value, unsigned base, bool upper, int width, char pad,
                bool negative) {
  char digits[24];
  int n = 0;
  const char* set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  do {
    digits[n++] = set[value % base];
    value /= base;
  } while (value != 0);
  if (negative) {
    if (pad == '0')
      sink.put('-');
    --width;
  }
  for (int i = n; i < width; ++i)
    sink.put(pad);
  if (negative && pad != '0')
    sink.put('-');
  while (n > 0)
    sink.put(digits[--n]);
}

// Append a string with minimum width (right aligned) or left aligned when `left`.
void put_string(Sink& sink, const char* s, int width, bool left) {
  if (s == nullptr)
    s = "(null)";
  int len = 0;
  while (s[len] != '\0')
    ++len;
  if (!left)
    for (int i = len; i < width; ++i)
      sink.put(' ');
  for (int i = 0; i < len; ++i)
    sink.put(s[i]);
  if (left)
    for (int i = len; i < width; ++i)
      sink.put(' ');
}

// Write bytes to COM1 without locking: each run of bytes up to a newline goes out with one
// `rep outsb` (one exit to the VMM for the whole run instead of one per byte), and each
// newline as "\r\n".
void raw_write(const char* data, size_t size) {
  size_t start = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i != size && data[i] != '\n')
      continue;
    arch::outsb(kCom1, data + start, i - start);
    if (i != size)
      arch::outsb(kCom1, "\r\n", 2);
    start = i + 1;
  }
}

}  // namespace

// Program COM1 for 115200 8N1 with FIFOs; interrupts stay off (output only).
void console_init() {
  arch::outb(kCom1 + 1, 0x00);
  arch::outb(kCom1 + 3, 0x80);
  arch::outb(kCom1 + 0, 0x01);
  arch::outb(kCom1 + 1, 0x00);
  arch::outb(kCom1 + 3, 0x03);
  arch::outb(kCom1 + 2, 0xc7);
}

// LSR bit 0 (data ready), then the receive buffer.
bool console_read_byte(uint8_t* byte) {
  if ((arch::inb(kCom1 + 5) & 0x01) == 0)
    return false;
  *byte = arch::inb(kCom1);
  return true;
}

// Write bytes to the console under the console lock.
void console_write(const char* data, size_t size) {
  mm::SpinGuard guard(g_console_lock);
  raw_write(data, size);
}

// Set the printk_level threshold.
void console_set_loglevel(int level) {
  g_loglevel = level;
}

// Format a printf-like string into `buffer` (see the header for the supported subset).
size_t vformat(char* buffer, size_t size, const char* fmt, va_list args) {
  Sink sink{buffer, size};
  for (const char* p = fmt; *p != '\0'; ++p) {
    if (*p != '%') {
      sink.put(*p);
      continue;
    }
    ++p;
    bool left = false;
    char pad = ' ';
    if (*p == '-')
      left = true, ++p;
    if (*p == '0')
      pad = '0', ++p;
    int width = 0;
    while (*p >= '0' && *p <= '9')
      width = width * 10 + (*p++ - '0');
    int longs = 0;
    while (*p == 'l' || *p == 'z')
      ++longs, ++p;
    switch (*p) {
      case 's':
        put_string(sink, va_arg(args, const char*), width, left);
        break;
      case 'c':
        sink.put(static_cast<char>(va_arg(args, int)));
        break;
      case 'd':
      case 'i': {
        int64_t v = longs ? va_arg(args, int64_t) : va_arg(args, int);
        uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
        put_number(sink, mag, 10, false, width, pad, v < 0);
        break;
      }
      case 'u':
        put_number(sink, longs ? va_arg(args, uint64_t) : va_arg(args, unsigned), 10, false, width,
                   pad, false);
        break;
      case 'x':
      case 'X':
        put_number(sink, longs ? va_arg(args, uint64_t) : va_arg(args, unsigned), 16, *p == 'X',
                   width, pad, false);
        break;
      case 'p':
        sink.put('0');
        sink.put('x');
        put_number(sink, reinterpret_cast<uint64_t>(va_arg(args, void*)), 16, false, 16, '0',
                   false);
        break;
      case '%':
        sink.put('%');
        break;
      default:
        sink.put('%');
        if (*p == '\0')
          --p;
        else
          sink.put(*p);
        break;
    }
  }
  if (size > 0)
    buffer[sink.len < size ? sink.len : size - 1] = '\0';
  return sink.len < size ? sink.len : size - 1;
}

// Format into a buffer.
size_t format(char* buffer, size_t size, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  size_t n = vformat(buffer, size, fmt, args);
  va_end(args);
  return n;
}

// Format and print one message under the console lock.
void printk(const char* fmt, ...) {
  char line[512];
  va_list args;
  va_start(args, fmt);
  size_t n = vformat(line, sizeof(line), fmt, args);
  va_end(args);
  console_write(line, n);
}

// Format and print one message if its level passes the threshold.
void printk_level(int level, const char* fmt, ...) {
  if (level > g_loglevel)
    return;
  char line[512];
  va_list args;
  va_start(args, fmt);
  size_t n = vformat(line, sizeof(line), fmt, args);
  va_end(args);
  console_write(line, n);
}

// Format and print without the console lock (used by panic).
void vprintk_unlocked(const char* fmt, va_list args) {
  char line[512];
  size_t n = vformat(line, sizeof(line), fmt, args);
  raw_write(line, n);
}

}  // namespace hvmm::guest
