// The one table from VmOptions' field names to `hvmm run`'s flags, and the translation of a
// VmOptions error ("memory_bytes: must be ...") into what a person who typed flags reads
// ("--memory 1T: must be ...").
//
// The leading field becomes its flag. What follows the flag is what `hvmm run` has always
// printed: a quoted path stays where it is ("--kernel '/tmp' is a directory ..."), a value
// row adds the text the user typed ("--memory 1T: ..."), and other rows are "--flag: ...".
// Field names with an underscore never occur as words of a sentence, so they are translated
// wherever they appear ("(raise memory_bytes or ...)" -> "(raise --memory or ...)"), except
// inside a quoted path; one-word names (kernel, vcpus, userfaultfd) only when leading.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>

namespace hvmm::cli {

// FieldFlag is one row: a VmOptions field, its `hvmm run` flag ("" when `hvmm run` cannot
// set it), and whether the flag's errors quote the value the user typed.
struct FieldFlag {
  std::string_view field;
  std::string_view flag;
  bool quotes_value = false;
};

// Every VmOptions field (daemon/options/field_names.h), once.
std::span<const FieldFlag> field_flag_names();

// The row of `field`, or nullptr.
const FieldFlag* find_field(std::string_view field);

// What the user typed for each flag (or its default), by flag ("--memory" -> "1T").
using TypedValues = std::map<std::string, std::string, std::less<>>;

// `message` (a VmOptions error) in terms of the flags; unchanged when it names no field.
std::string translate_field_error(std::string_view message, const TypedValues& typed);

}  // namespace hvmm::cli
