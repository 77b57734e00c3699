// The field -> flag table and the translation of VmOptions errors into flag terms.
#include "hvmm/daemon/cli/flag_names.h"

#include <algorithm>
#include <array>

#include "hvmm/daemon/options/field_names.h"

namespace hvmm::cli {
namespace {

namespace field = daemon::field;

// One row per field, in VmOptions' order. `name` has no flag: `hvmm run` names its VM "run".
constexpr std::array<FieldFlag, 20> kFieldFlags = {{
    {field::kName, "", false},
    {field::kKernel, "--kernel", false},
    {field::kInitrd, "--initrd", false},
    {field::kCmdline, "--cmdline", false},
    {field::kMemory, "--memory", true},
    {field::kVcpus, "--vcpus", true},
    {field::kFaultLog, "--fault-log", false},
    {field::kConsoleLog, "--console-log", false},
    {field::kConsoleLogMax, "--console-log-max", true},
    {field::kBalloon, "--no-balloon", false},
    {field::kBalloonTarget, "--balloon", true},
    {field::kFreePageReporting, "--free-page-reporting", false},
    {field::kBalloonStatsInterval, "--balloon-stats-interval", true},
    {field::kControlChannel, "--control", false},
    {field::kFaultAround, "--fault-around", true},
    {field::kUserfaultfd, "--userfaultfd", true},
    {field::kStatsFile, "--stats", false},
    {field::kReclaimPolicy, "--reclaim", false},
    {field::kReclaimSwap, "--reclaim-swap", true},
    {field::kDirtyTracking, "--dirty-tracking", true},
}};
static_assert(kFieldFlags.size() == field::kVmOptionFields.size());

// True for the characters of a field name.
bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// The flag spelling of a leading "field: rest".
std::string translate_lead(const FieldFlag& row, std::string_view rest, const TypedValues& typed) {
  std::string flag(row.flag);
  if (!rest.empty() && rest.front() == '\'') {
    return flag + " " + std::string(rest);
  }
  if (row.quotes_value) {
    if (auto value = typed.find(row.flag); value != typed.end() && !value->second.empty()) {
      return flag + " " + value->second + ": " + std::string(rest);
    }
  }
  return flag + ": " + std::string(rest);
}

// Replace the underscore field names that stand as whole words outside quotes.
std::string translate_references(std::string_view text) {
  std::string out;
  bool quoted = false;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    // A quote opens a path only where a word could start ("guest's" is no path), and the
    // next quote closes it.
    if (c == '\'' && (quoted || i == 0 || text[i - 1] == ' ' || text[i - 1] == '(')) {
      quoted = !quoted;
    }
    if (quoted || !is_name_char(c) ||
        (i > 0 && (is_name_char(text[i - 1]) || text[i - 1] == '-'))) {
      out += c;
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && is_name_char(text[end])) {
      ++end;
    }
    std::string_view word = text.substr(i, end - i);
    const FieldFlag* row = find_field(word);
    const bool translate = row && !row->flag.empty() && word.find('_') != std::string_view::npos;
    out += translate ? std::string(row->flag) : std::string(word);
    i = end;
  }
  return out;
}

}  // namespace

std::span<const FieldFlag> field_flag_names() {
  return kFieldFlags;
}

const FieldFlag* find_field(std::string_view name) {
  auto row = std::find_if(kFieldFlags.begin(), kFieldFlags.end(),
                          [name](const FieldFlag& f) { return f.field == name; });
  return row == kFieldFlags.end() ? nullptr : &*row;
}

// The lead first (it decides the shape), then the references in what follows.
std::string translate_field_error(std::string_view message, const TypedValues& typed) {
  const size_t colon = message.find(": ");
  if (colon != std::string_view::npos) {
    const FieldFlag* row = find_field(message.substr(0, colon));
    if (row && !row->flag.empty()) {
      return translate_lead(*row, translate_references(message.substr(colon + 2)), typed);
    }
  }
  return translate_references(message);
}

}  // namespace hvmm::cli
