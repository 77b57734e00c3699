// The kernel command line: `key=value` and bare `flag` words separated by spaces.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hvmm::guest {

// Remember the command line (the string must outlive all lookups).
void cmdline_set(const char* cmdline);

// Copy the value of `key=` into `out` (NUL terminated); false if the key is absent.
bool cmdline_get(const char* key, char* out, size_t size);

// Copy the value of the `nth` (0-based) `key=` of a repeatable option (e.g.
// virtio_mmio.device=); false if there are fewer, or that occurrence has no value.
bool cmdline_get_nth(const char* key, unsigned nth, char* out, size_t size);

// Return the numeric value of `key=` (decimal, 0x hex, optional K/M/G suffix) or `fallback`.
uint64_t cmdline_get_number(const char* key, uint64_t fallback);

// True if the bare word `flag` (or `flag=...`) is present.
bool cmdline_has(const char* flag);

// True if `word` is one of the comma-separated items of `list` ("all" matches everything).
bool list_contains(const char* list, const char* word);

// Parse a number with optional K/M/G suffix; false if `text` is not one.
bool parse_number(const char* text, uint64_t* value);

}  // namespace hvmm::guest
