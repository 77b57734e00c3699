// Command-line lookups over the copy of the loader's string kept in BootInfo.
#include "hvmm/guest/cmdline.h"

namespace hvmm::guest {
namespace {

const char* g_cmdline = "";

// If the word at `p` is `key` followed by '=', ' ' or NUL, return where it ends.
const char* match_word(const char* p, const char* key) {
  while (*key != '\0')
    if (*p++ != *key++)
      return nullptr;
  return (*p == '=' || *p == ' ' || *p == '\0') ? p : nullptr;
}

// Find the `nth` (0-based) occurrence of the word `key` at a word boundary; return the
// character after it or nullptr.
const char* find_key(const char* key, unsigned nth = 0) {
  const char* p = g_cmdline;
  while (*p != '\0') {
    while (*p == ' ')
      ++p;
    if (const char* end = match_word(p, key)) {
      if (nth == 0)
        return end;
      --nth;
    }
    while (*p != ' ' && *p != '\0')
      ++p;
  }
  return nullptr;
}

// Copy the value after `key` at `p` (which must point at '=') into `out`.
bool copy_value(const char* p, char* out, size_t size) {
  if (p == nullptr || *p != '=' || size == 0)
    return false;
  ++p;
  size_t n = 0;
  while (p[n] != ' ' && p[n] != '\0' && n + 1 < size) {
    out[n] = p[n];
    ++n;
  }
  out[n] = '\0';
  return true;
}

}  // namespace

// Keep a pointer to the command line.
void cmdline_set(const char* cmdline) {
  g_cmdline = cmdline != nullptr ? cmdline : "";
}

// Copy the value of `key=`.
bool cmdline_get(const char* key, char* out, size_t size) {
  return copy_value(find_key(key), out, size);
}

// Copy the value of the `nth` `key=`.
bool cmdline_get_nth(const char* key, unsigned nth, char* out, size_t size) {
  return copy_value(find_key(key, nth), out, size);
}

// Parse decimal or 0x-prefixed hex with an optional K/M/G suffix.
bool parse_number(const char* text, uint64_t* value) {
  uint64_t v = 0;
  unsigned base = 10;
  if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
    base = 16, text += 2;
  if (*text == '\0')
    return false;
  for (; *text != '\0'; ++text) {
    char c = *text;
    unsigned digit;
    if (c >= '0' && c <= '9')
      digit = static_cast<unsigned>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f')
      digit = static_cast<unsigned>(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F')
      digit = static_cast<unsigned>(c - 'A' + 10);
    else
      break;
    v = v * base + digit;
  }
  switch (*text) {
    case 'K':
    case 'k':
      v <<= 10, ++text;
      break;
    case 'M':
    case 'm':
      v <<= 20, ++text;
      break;
    case 'G':
    case 'g':
      v <<= 30, ++text;
      break;
    default:
      break;
  }
  if (*text != '\0')
    return false;
  *value = v;
  return true;
}

// Numeric value of `key=` or `fallback`.
uint64_t cmdline_get_number(const char* key, uint64_t fallback) {
  char text[32];
  uint64_t v;
  if (!cmdline_get(key, text, sizeof(text)) || !parse_number(text, &v))
    return fallback;
  return v;
}

// True if the word is present.
bool cmdline_has(const char* flag) {
  return find_key(flag) != nullptr;
}

// Membership test in a comma-separated list; "all" matches every word.
bool list_contains(const char* list, const char* word) {
  size_t word_len = 0;
  while (word[word_len] != '\0')
    ++word_len;
  const char* p = list;
  while (*p != '\0') {
    const char* e = p;
    while (*e != ',' && *e != '\0')
      ++e;
    size_t len = static_cast<size_t>(e - p);
    bool is_all = len == 3 && p[0] == 'a' && p[1] == 'l' && p[2] == 'l';
    bool same = len == word_len;
    for (size_t i = 0; same && i < len; ++i)
      same = p[i] == word[i];
    if (is_all || same)
      return true;
    p = *e == ',' ? e + 1 : e;
  }
  return false;
}

}  // namespace hvmm::guest
