// The CLI as a user runs it: `hvmm ARGS... --socket SOCKET [--json]` (hvmm forwards client
// commands to hvmm-client) or hvmm-client itself, and protobuf's JSON mapping of what
// --json prints, parsed back into the API's messages.
#pragma once

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <string>
#include <vector>

#include "hvmm/base/result.h"
#include "subprocess.h"

namespace hvmm::e2e {

enum class CliBinary { kHvmm, kHvmmClient };

struct CliOptions {
  CliBinary binary = CliBinary::kHvmm;
  bool json = true;
  std::chrono::milliseconds timeout{180000};
};

// Run the CLI with `args` against the daemon at `socket`.
Result<CommandResult> run_cli(const std::string& socket, const std::vector<std::string>& args,
                              const CliOptions& options = {});

// The lines of `output` that hold a JSON object (--json prints one object a line).
std::vector<std::string> json_lines(const std::string& output);

// Parse one JSON object into `Message` (unknown fields are an error: the CLI prints the API's
// messages, nothing else).
template <typename Message>
Result<Message> parse_json(const std::string& json) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message, options);
  if (!status.ok()) {
    return make_error(ErrorCode::kInvalidArgument, "not a {} in JSON ({}): {}",
                      Message::descriptor()->full_name(), std::string(status.message()), json);
  }
  return message;
}

}  // namespace hvmm::e2e
