// health: the daemon's gRPC health (grpc.health.v1.Health/Check) on its socket, as an exit
// status a probe can use: 0 SERVING, 4 anything else (no socket, no answer in time, or
// NOT_SERVING while hvmmd starts or stops). A Kubernetes exec probe and scripts run it.
#include <fmt/format.h>

#include "hvmm/daemon/client/arg_values.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/exit_codes.h"
#include "hvmm/daemon/client/health_check.h"

namespace hvmm::client {
namespace {

int print_health(Context& context, const std::string& timeout_text) {
  auto timeout = duration_ms_value("--timeout", timeout_text);
  if (!timeout) {
    return context.bad_argument(timeout.error().message);
  }
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  auto status = check_health(channel, std::chrono::milliseconds(*timeout));
  if (!status) {
    context.io().err << fmt::format("hvmm: hvmmd at {}: {}\n", context.socket(),
                                    status.error().message);
    return kExitUnavailable;
  }
  const std::string name = health_status_name(*status);
  if (context.json()) {
    context.io().out << fmt::format("{{\"socket\":\"{}\",\"status\":\"{}\"}}\n", context.socket(),
                                    name);
  } else {
    context.io().out << fmt::format("hvmmd at {}: {}\n", context.socket(), name);
  }
  return *status == kHealthServing ? kExitOk : kExitUnavailable;
}

}  // namespace

void add_health_command(CLI::App& app, Context& context) {
  CLI::App* command = add_top_command(app, "health");
  auto timeout = std::make_shared<std::string>("5s");
  command->add_option("--timeout", *timeout, "How long to wait for the answer")
      ->capture_default_str();
  command->callback([&context, timeout] {
    context.action = [&context, timeout] { return print_health(context, *timeout); };
  });
}

}  // namespace hvmm::client
