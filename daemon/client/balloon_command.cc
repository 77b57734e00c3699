// balloon set NAME SIZE [--wait DURATION]: set the target, or set it and follow the driver's
// progress (WatchBalloon) until it is reached or the wait is over.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <optional>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/client/arg_values.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/exit_codes.h"
#include "hvmm/daemon/client/progress.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;

struct BalloonArgs {
  std::string name;
  std::string size;
  std::string wait;
};

// The share of the way from `start` to the target that `now` has come.
double progress_fraction(uint64_t start, const v1::BalloonProgress& now) {
  const uint64_t target = now.target_bytes();
  const uint64_t distance = target > start ? target - start : start - target;
  if (distance == 0 || now.reached()) {
    return 1.0;
  }
  const uint64_t actual = now.actual_bytes();
  const uint64_t done = target > start ? (actual > start ? actual - start : 0)
                                       : (actual < start ? start - actual : 0);
  return static_cast<double>(done) / static_cast<double>(distance);
}

// One update in words: "balloon web: 32.0 MiB of 64.0 MiB, host RSS 100 MiB".
std::string progress_text(const std::string& name, const v1::BalloonProgress& now) {
  return fmt::format("balloon {}: {} of {}, host RSS {}{}", name,
                     args::human_size(now.actual_bytes()), args::human_size(now.target_bytes()),
                     args::human_size(now.host_rss_bytes()), now.reached() ? ", reached" : "");
}

// Set the target and return at once.
int set_target(Context& context, const std::string& name, uint64_t target) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::SetBalloonTargetRequest request;
  request.set_name(name);
  request.set_target_bytes(target);
  v1::SetBalloonTargetResponse response;
  auto call = context.call();
  grpc::Status status =
      v1::MemoryService::NewStub(channel)->SetBalloonTarget(call.get(), request, &response);
  if (!status.ok()) {
    return context.finish(status);
  }
  if (context.json()) {
    context.print_json(response);
  } else {
    context.io().out << fmt::format("balloon {}: target {} (now {})\n", name,
                                    args::human_size(response.balloon().target_bytes()),
                                    args::human_size(response.balloon().actual_bytes()));
  }
  return 0;
}

// Set the target through WatchBalloon and show each update until the stream ends.
int wait_for_target(Context& context, const std::string& name, uint64_t target, uint32_t wait_ms) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::WatchBalloonRequest request;
  request.set_name(name);
  request.set_target_bytes(target);
  request.set_deadline_ms(wait_ms);
  auto call = context.call(std::chrono::milliseconds(wait_ms));
  auto reader = v1::MemoryService::NewStub(channel)->WatchBalloon(call.get(), request);
  Progress progress(context.io().out, context.io().out_is_terminal && !context.json());
  v1::BalloonProgress update;
  std::optional<uint64_t> start;
  bool reached = false;
  while (reader->Read(&update)) {
    start = start.value_or(update.actual_bytes());
    reached = update.reached();
    if (context.json()) {
      context.print_json(update);
    } else {
      progress.update(progress_fraction(*start, update), progress_text(name, update));
    }
  }
  progress.finish();
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    return context.finish(status);
  }
  if (!reached) {
    context.io().err << fmt::format("hvmm: balloon {}: the target {} was not reached\n", name,
                                    args::human_size(target));
    return kExitDeadlineExceeded;
  }
  return 0;
}

int balloon_set(Context& context, const BalloonArgs& args) {
  auto target = size_value("SIZE", args.size);
  if (!target) {
    return context.bad_argument(target.error().message);
  }
  if (args.wait.empty()) {
    return set_target(context, args.name, *target);
  }
  auto wait = duration_ms_value("--wait", args.wait);
  if (!wait) {
    return context.bad_argument(wait.error().message);
  }
  if (*wait == 0) {
    return set_target(context, args.name, *target);
  }
  return wait_for_target(context, args.name, *target, *wait);
}

}  // namespace

void add_balloon_command(CLI::App& app, Context& context) {
  CLI::App* balloon = add_top_command(app, "balloon");
  balloon->require_subcommand(1);
  auto args = std::make_shared<BalloonArgs>();
  CLI::App* set = balloon->add_subcommand(
      "set", "Set the balloon's target: the memory the guest gives back (below its RAM)");
  add_vm_name(*set, args->name);
  set->add_option("SIZE", args->size, "The target, with a K, M or G suffix")->required();
  set->add_option("--wait", args->wait,
                  "Wait this long for the guest to reach it, showing progress (e.g. 30s)")
      ->type_name("DURATION");
  set->callback([&context, args] {
    context.action = [&context, args] { return balloon_set(context, *args); };
  });
}

}  // namespace hvmm::client
