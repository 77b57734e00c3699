// Searching --json output (json_fields.h).
#include "json_fields.h"

#include <google/protobuf/util/json_util.h>

namespace hvmm::e2e {

namespace {

using google::protobuf::Value;

// "actual_bytes" -> "actualBytes" (protobuf's JSON name of a field).
std::string camel_case(const std::string& name) {
  std::string camel;
  bool upper = false;
  for (char c : name) {
    if (c == '_') {
      upper = true;
    } else {
      camel += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      upper = false;
    }
  }
  return camel;
}

// Visit `value` and everything inside it, depth first; `visit` sees each object.
template <typename Visit>
void walk(const Value& value, const Visit& visit) {
  if (value.has_struct_value()) {
    visit(value);
    for (const auto& [key, inner] : value.struct_value().fields()) {
      walk(inner, visit);
    }
  } else if (value.has_list_value()) {
    for (const Value& inner : value.list_value().values()) {
      walk(inner, visit);
    }
  }
}

// The field `name` or its camel-case form of object `object`, or null.
const Value* field_of(const Value& object, const std::string& name) {
  const auto& fields = object.struct_value().fields();
  auto found = fields.find(name);
  if (found == fields.end()) {
    found = fields.find(camel_case(name));
  }
  return found == fields.end() ? nullptr : &found->second;
}

}  // namespace

Result<Value> parse_json_value(const std::string& json) {
  Value value;
  auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  if (!status.ok()) {
    return make_error(ErrorCode::kInvalidArgument, "not JSON ({}): {}",
                      std::string(status.message()), json);
  }
  return value;
}

std::vector<const Value*> find_fields(const Value& value, const std::string& name) {
  std::vector<const Value*> found;
  walk(value, [&](const Value& object) {
    if (const Value* field = field_of(object, name)) {
      found.push_back(field);
    }
  });
  return found;
}

std::optional<uint64_t> find_uint(const Value& value, const std::string& name) {
  for (const Value* field : find_fields(value, name)) {
    if (field->has_number_value()) {
      return static_cast<uint64_t>(field->number_value());
    }
    if (field->has_string_value()) {
      try {
        return std::stoull(field->string_value());
      } catch (const std::exception&) {
        continue;
      }
    }
  }
  return std::nullopt;
}

std::optional<std::string> find_string(const Value& value, const std::string& name) {
  for (const Value* field : find_fields(value, name)) {
    if (field->has_string_value()) {
      return field->string_value();
    }
  }
  return std::nullopt;
}

std::vector<const Value*> objects_with(const Value& value, const std::string& name) {
  std::vector<const Value*> found;
  walk(value, [&](const Value& object) {
    if (field_of(object, name) != nullptr) {
      found.push_back(&object);
    }
  });
  return found;
}

}  // namespace hvmm::e2e
