// CreateVm's checks (spec_check.h).
#include "hvmm/daemon/server/spec_check.h"

#include <array>
#include <cctype>

#include "hvmm/daemon/options/vm_options.h"
#include "hvmm/daemon/spec/vm_spec.h"

namespace hvmm::daemon {
namespace {

// How VmOptions fields (and the `hvmm run` flags some messages still name) are spelled in
// hvmm.v1.VmSpec.
struct FieldName {
  std::string_view name;  // a VmOptions field or an `hvmm run` flag
  std::string_view spec;  // the VmSpec field path
};
constexpr std::array<FieldName, 26> kFieldNames = {{
    {"kernel", "kernel"},
    {"initrd", "initrd"},
    {"cmdline", "cmdline"},
    {"memory_bytes", "memory_bytes"},
    {"vcpus", "vcpus"},
    {"balloon_target_bytes", "balloon.initial_target_bytes"},
    {"free_page_reporting", "balloon.free_page_reporting"},
    {"balloon_stats_interval_seconds", "balloon.stats_interval_seconds"},
    {"balloon", "balloon.disabled"},
    {"reclaim_policy", "reclaim_policy"},
    {"fault_around_bytes", "fault_around_bytes"},
    {"control_channel", "control_channel"},
    {"console_log_max_bytes", "console_log_max_bytes"},
    {"dirty_tracking", "dirty_tracking"},
    {"--kernel", "kernel"},
    {"--initrd", "initrd"},
    {"--cmdline", "cmdline"},
    {"--memory", "memory_bytes"},
    {"--vcpus", "vcpus"},
    {"--balloon-stats-interval", "balloon.stats_interval_seconds"},
    {"--balloon", "balloon.initial_target_bytes"},
    {"--free-page-reporting", "balloon.free_page_reporting"},
    {"--no-balloon", "balloon.disabled"},
    {"--reclaim", "reclaim_policy"},
    {"--fault-around", "fault_around_bytes"},
    {"--console-log-max", "console_log_max_bytes"},
}};

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
}

// Where `name` occurs in `message` as a whole word, or npos.
size_t find_word(const std::string& message, std::string_view name) {
  for (size_t at = message.find(name); at != std::string::npos; at = message.find(name, at + 1)) {
    bool starts = at == 0 || !is_name_char(message[at - 1]);
    size_t end = at + name.size();
    bool ends = end == message.size() || !is_name_char(message[end]);
    if (starts && ends) {
      return at;
    }
  }
  return std::string::npos;
}

Result<void> check_length(std::string_view field, const std::string& value, size_t limit) {
  if (value.size() > limit) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {} bytes long, at most {} are accepted",
                      field, value.size(), limit);
  }
  return Ok();
}

}  // namespace

std::string quote_for_message(std::string_view text) {
  std::string quoted;
  for (char c : text.substr(0, 64)) {
    quoted += std::isprint(static_cast<unsigned char>(c)) != 0 ? c : '?';
  }
  if (text.size() > 64) {
    quoted += "...";
  }
  return "'" + quoted + "'";
}

Result<void> check_vm_name_lookup(std::string_view field, const std::string& name) {
  if (name.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "{}: empty (name the VM)", field);
  }
  if (name.size() > kMaxNameLength) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: {} bytes long, VM names have at most {} characters", field, name.size(),
                      kMaxNameLength);
  }
  return Ok();
}

Result<void> check_new_vm_name(std::string_view field, const std::string& name) {
  HVMM_TRY(check_vm_name_lookup(field, name));
  if (std::isalnum(static_cast<unsigned char>(name[0])) == 0) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {} must start with a letter or a digit",
                      field, quote_for_message(name));
  }
  for (char c : name) {
    if (!is_name_char(c) && c != '.') {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: {} has a character outside [A-Za-z0-9._-]", field,
                        quote_for_message(name));
    }
  }
  return Ok();
}

Result<void> check_spec_strings(const hvmm::v1::VmSpec& spec) {
  HVMM_TRY(check_length("spec.kernel", spec.kernel(), kMaxPathLength));
  HVMM_TRY(check_length("spec.initrd", spec.initrd(), kMaxPathLength));
  HVMM_TRY(check_length("spec.cmdline", spec.cmdline(), kMaxCmdlineLength));
  HVMM_TRY(check_length("spec.reclaim_policy", spec.reclaim_policy(), kMaxPolicyLength));
  HVMM_TRY(check_length("spec.dirty_tracking", spec.dirty_tracking(), 16));
  return Ok();
}

std::string spec_field_message(const std::string& message) {
  if (message.rfind("spec.", 0) == 0) {
    return message;
  }
  size_t best = std::string::npos;
  const FieldName* found = nullptr;
  for (const FieldName& field : kFieldNames) {
    size_t at = find_word(message, field.name);
    // The earliest mention wins; at the same place, the longer name (--balloon-stats-interval
    // over --balloon) is the one the word is.
    if (at != std::string::npos && (best == std::string::npos || at < best ||
                                    (at == best && field.name.size() > found->name.size()))) {
      best = at;
      found = &field;
    }
  }
  if (found == nullptr) {
    return "spec: " + message;
  }
  std::string rest = message;
  if (best == 0) {
    rest.erase(0, found->name.size());
    // "memory_bytes: x" keeps its colon; "--memory 4096: x" keeps its value.
    return "spec." + std::string(found->spec) + rest;
  }
  std::string plain(found->spec.substr(found->spec.rfind('.') + 1));
  rest.replace(best, found->name.size(), plain);
  return "spec." + std::string(found->spec) + ": " + rest;
}

Result<void> check_spec_policy(const hvmm::v1::VmSpec& spec) {
  // memory_bytes 0 is VmOptions' default size.
  const uint64_t memory = spec.memory_bytes() != 0 ? spec.memory_bytes() : VmOptions{}.memory_bytes;
  if (spec.policy().floor_bytes() > memory) {
    return make_error(ErrorCode::kInvalidArgument,
                      "spec.policy.floor_bytes: {} is above the VM's memory_bytes {}",
                      spec.policy().floor_bytes(), memory);
  }
  return Ok();
}

Result<void> check_spec(const std::string& name, const hvmm::v1::VmSpec& spec,
                        std::span<const uint8_t> bundled_kernel) {
  HVMM_TRY(check_spec_strings(spec));
  HVMM_TRY(check_spec_policy(spec));
  auto options = options_from_spec(name, spec);
  if (!options) {
    return make_error(ErrorCode::kInvalidArgument, "{}",
                      spec_field_message(options.error().message));
  }
  // The VM process writes its logs; nothing is opened here.
  options->console_log.clear();
  options->fault_log.clear();
  auto config = make_machine_config(*options, bundled_kernel);
  if (!config) {
    return make_error(ErrorCode::kInvalidArgument, "{}",
                      spec_field_message(config.error().message));
  }
  return Ok();
}

}  // namespace hvmm::daemon
