// The freestanding runtime: memcpy/memset as `rep movsq`/`rep stosq` string instructions, operator
// new/delete routed to kmalloc, and the C++ ABI hooks a freestanding program still needs.
#include "hvmm/guest/runtime.h"

#include <cstdint>
#include <new>

#include "hvmm/guest/mm/slab.h"
#include "hvmm/guest/panic.h"

extern "C" {

// Copy n bytes: `rep movsq` for the bulk, `rep movsb` for the tail (string instructions
// are emulated per element, so quadwords make bulk copies 8 times cheaper).
void* memcpy(void* dst, const void* src, size_t n) {
  void* ret = dst;
  size_t quads = n >> 3;
  size_t tail = n & 7;
  asm volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(quads) : : "memory");
  asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(tail) : : "memory");
  return ret;
}

// Copy n possibly overlapping bytes (backwards with std when dst is above src).
void* memmove(void* dst, const void* src, size_t n) {
  auto d = reinterpret_cast<uintptr_t>(dst);
  auto s = reinterpret_cast<uintptr_t>(src);
  if (d <= s || d >= s + n)
    return memcpy(dst, src, n);
  void* ret = dst;
  auto* dl = static_cast<char*>(dst) + n - 1;
  auto* sl = static_cast<const char*>(src) + n - 1;
  asm volatile("std; rep movsb; cld" : "+D"(dl), "+S"(sl), "+c"(n) : : "memory");
  return ret;
}

// Fill n bytes: `rep stosq` for the bulk, `rep stosb` for the tail.
void* memset(void* dst, int value, size_t n) {
  void* ret = dst;
  uint64_t pattern = 0x0101010101010101ull * static_cast<uint8_t>(value);
  size_t quads = n >> 3;
  size_t tail = n & 7;
  asm volatile("rep stosq" : "+D"(dst), "+c"(quads) : "a"(pattern) : "memory");
  asm volatile("rep stosb" : "+D"(dst), "+c"(tail) : "a"(pattern) : "memory");
  return ret;
}

// Compare n bytes.
int memcmp(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (size_t i = 0; i < n; ++i)
    if (x[i] != y[i])
      return x[i] < y[i] ? -1 : 1;
  return 0;
}

// Length of a NUL-terminated string.
size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n] != '\0')
    ++n;
  return n;
}

// Called if a pure virtual function is ever invoked.
void __cxa_pure_virtual() {
  hvmm::guest::panic("pure virtual function called");
}

// Static destructors are never run in the kernel.
int __cxa_atexit(void (*)(void*), void*, void*) {
  return 0;
}
void* __dso_handle = nullptr;

}  // extern "C"

namespace hvmm::guest {

// Compare two strings for equality.
bool str_equal(const char* a, const char* b) {
  while (*a != '\0' && *a == *b)
    ++a, ++b;
  return *a == *b;
}

// True if `s` starts with `prefix`.
bool str_starts_with(const char* s, const char* prefix) {
  while (*prefix != '\0')
    if (*s++ != *prefix++)
      return false;
  return true;
}

}  // namespace hvmm::guest

// operator new: kmalloc with GFP_KERNEL; running out of memory in the kernel is fatal.
void* operator new(size_t size) {
  void* p = hvmm::guest::mm::kmalloc(size, hvmm::guest::mm::kGfpKernel);
  if (p == nullptr)
    hvmm::guest::panic("operator new: out of memory (%lu bytes)", size);
  return p;
}
void* operator new[](size_t size) {
  return operator new(size);
}
void operator delete(void* p) noexcept {
  hvmm::guest::mm::kfree(p);
}
void operator delete[](void* p) noexcept {
  hvmm::guest::mm::kfree(p);
}
void operator delete(void* p, size_t) noexcept {
  hvmm::guest::mm::kfree(p);
}
void operator delete[](void* p, size_t) noexcept {
  hvmm::guest::mm::kfree(p);
}
