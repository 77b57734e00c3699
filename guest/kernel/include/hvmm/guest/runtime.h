// The kernel's tiny freestanding runtime: the C memory functions the compiler may call,
// and small string helpers.
#pragma once

#include <cstddef>

extern "C" {
void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
void* memset(void* dst, int value, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
}

namespace hvmm::guest {

// Compare two NUL-terminated strings for equality.
bool str_equal(const char* a, const char* b);

// True if `s` starts with `prefix`.
bool str_starts_with(const char* s, const char* prefix);

}  // namespace hvmm::guest
