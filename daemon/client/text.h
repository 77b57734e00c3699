// Text for people: aligned tables, enum values as words, ranges and times.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace hvmm::client {

// Table prints rows under a header, each column as wide as its widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size(); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// An enum value's protobuf name without its prefix, lower case, '_' as '-':
// enum_word("VM_STATE_RUNNING", "VM_STATE_") is "running".
std::string enum_word(std::string_view name, std::string_view prefix);

// "[0x100000, 0x300000)".
std::string format_range(uint64_t start, uint64_t size);

// A Unix time in nanoseconds as UTC with microseconds ("2024-06-11T12:00:00.123456Z"); "-"
// for 0.
std::string format_time(uint64_t unix_ns);

// "0x1000".
std::string hex(uint64_t value);

}  // namespace hvmm::client
