// Tables and words for the client's human output.
#include "hvmm/daemon/client/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace hvmm::client {

// Two spaces between columns; the last column is not padded.
void Table::print(std::ostream& out) const {
  std::vector<size_t> widths(header_.size(), 0);
  auto widen = [&widths](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  widen(header_);
  std::for_each(rows_.begin(), rows_.end(), widen);
  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      text += row[i];
      if (i + 1 < row.size()) {
        text += std::string(widths[i] - row[i].size() + 2, ' ');
      }
    }
    out << text << "\n";
  };
  line(header_);
  std::for_each(rows_.begin(), rows_.end(), line);
}

std::string enum_word(std::string_view name, std::string_view prefix) {
  if (name.substr(0, prefix.size()) == prefix) {
    name.remove_prefix(prefix.size());
  }
  std::string word;
  for (char c : name) {
    word += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return word.empty() ? "unknown" : word;
}

std::string format_range(uint64_t start, uint64_t size) {
  return fmt::format("[{:#x}, {:#x})", start, start + size);
}

std::string format_time(uint64_t unix_ns) {
  if (unix_ns == 0) {
    return "-";
  }
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:06}Z", text, (unix_ns / 1000) % 1'000'000);
}

std::string hex(uint64_t value) {
  return fmt::format("{:#x}", value);
}

}  // namespace hvmm::client
