// Reading the CLI's --json output without tying the tests to which response message wraps a
// figure (`vm get` may print a Vm or a GetVmResponse): a line is parsed as a generic JSON
// object (google.protobuf.Struct) and searched for a field at any depth, by its proto name or
// its lowerCamelCase JSON name. 64-bit integers arrive as strings (protobuf's JSON mapping).
#pragma once

#include <google/protobuf/struct.pb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/base/result.h"

namespace hvmm::e2e {

// Parse one line of --json output.
Result<google::protobuf::Value> parse_json_value(const std::string& json);

// Every value of field `name` ("actual_bytes" or "actualBytes") inside `value`, depth first.
std::vector<const google::protobuf::Value*> find_fields(const google::protobuf::Value& value,
                                                        const std::string& name);

// The first `name` inside `value` as an unsigned number (from a number or a decimal string).
std::optional<uint64_t> find_uint(const google::protobuf::Value& value, const std::string& name);

// The first `name` inside `value` as a string (enums are their names).
std::optional<std::string> find_string(const google::protobuf::Value& value,
                                       const std::string& name);

// The objects inside `value` that have field `name` (e.g. every mapping: they have "range").
std::vector<const google::protobuf::Value*> objects_with(const google::protobuf::Value& value,
                                                         const std::string& name);

}  // namespace hvmm::e2e
