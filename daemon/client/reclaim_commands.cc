// reclaim NAME [--epochs N] (one epoch per request, so each shows as progress) and
// reclaim NAME --set-policy POLICY (Reclaim's set_policy; `policy` is the host's policy).
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <optional>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/progress.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;

struct ReclaimArgs {
  std::string name;
  unsigned epochs = 1;
  std::optional<std::string> set_policy;
};

// What epoch `done` of `total` did, and where the totals stand.
std::string epoch_text(const std::string& name, unsigned done, unsigned total,
                       const v1::ReclaimResponse& response) {
  const v1::ReclaimStats& before = response.before();
  const v1::ReclaimStats& after = response.after();
  return fmt::format(
      "reclaim {}: epoch {}/{}: +{} pages reclaimed ({} in all), +{} refaulted, "
      "+{} aborted, {}",
      name, done, total, after.pages_reclaimed() - before.pages_reclaimed(),
      after.pages_reclaimed(), after.pages_refaulted() - before.pages_refaulted(),
      after.pages_aborted() - before.pages_aborted(),
      args::human_duration_ns(response.duration_ns()));
}

// The whole run in one line.
std::string summary_text(const std::string& name, unsigned epochs, const v1::ReclaimStats& first,
                         const v1::ReclaimStats& last, uint64_t duration_ns) {
  const uint64_t pages = last.pages_reclaimed() - first.pages_reclaimed();
  return fmt::format(
      "reclaim {}: {} epochs, {} pages reclaimed ({}), {} refaulted, {} aborted, "
      "{} refused, in {}",
      name, epochs, pages, args::human_size(pages * 4096),
      last.pages_refaulted() - first.pages_refaulted(),
      last.pages_aborted() - first.pages_aborted(), last.pages_refused() - first.pages_refused(),
      args::human_duration_ns(duration_ns));
}

int reclaim(Context& context, const ReclaimArgs& args) {
  if (args.epochs == 0) {
    return context.bad_argument("--epochs: must be at least 1");
  }
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  auto stub = v1::MemoryService::NewStub(channel);
  Progress progress(context.io().out, context.io().out_is_terminal && !context.json());
  v1::ReclaimStats first;
  v1::ReclaimStats last;
  uint64_t duration_ns = 0;
  for (unsigned epoch = 1; epoch <= args.epochs; ++epoch) {
    v1::ReclaimRequest request;
    request.set_name(args.name);
    request.set_epochs(1);
    v1::ReclaimResponse response;
    auto call = context.call();
    grpc::Status status = stub->Reclaim(call.get(), request, &response);
    if (!status.ok()) {
      progress.finish();
      return context.finish(status);
    }
    if (epoch == 1) {
      first = response.before();
    }
    last = response.after();
    duration_ns += response.duration_ns();
    if (context.json()) {
      context.print_json(response);
    } else {
      progress.update(static_cast<double>(epoch) / args.epochs,
                      epoch_text(args.name, epoch, args.epochs, response));
    }
  }
  progress.finish();
  if (!context.json()) {
    context.io().out << summary_text(args.name, args.epochs, first, last, duration_ns) << "\n";
  }
  return 0;
}

int set_policy(Context& context, const std::string& name, const std::string& policy) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::ReclaimRequest request;
  request.set_name(name);
  request.set_set_policy(policy);
  v1::ReclaimResponse response;
  auto call = context.call();
  grpc::Status status =
      v1::MemoryService::NewStub(channel)->Reclaim(call.get(), request, &response);
  if (!status.ok()) {
    return context.finish(status);
  }
  if (context.json()) {
    context.print_json(response);
  } else {
    context.io().out << fmt::format("reclaim policy of {}: \"{}\" (was \"{}\")\n", name,
                                    response.after().policy(), response.before().policy());
  }
  return 0;
}

}  // namespace

void add_reclaim_commands(CLI::App& app, Context& context) {
  auto args = std::make_shared<ReclaimArgs>();
  CLI::App* command = add_top_command(app, "reclaim");
  add_vm_name(*command, args->name);
  CLI::Option* epochs =
      command->add_option("--epochs", args->epochs, "Reclaim epochs to run now (default 1)")
          ->type_name("N");
  command
      ->add_option_function<std::string>(
          "--set-policy", [args](const std::string& policy) { args->set_policy = policy; },
          "Replace the VM's reclaim policy instead, POLICY in `hvmm run --reclaim` syntax "
          "(e.g. cold=3,target=64M)")
      ->type_name("POLICY")
      ->excludes(epochs);
  command->callback([&context, args] {
    context.action = [&context, args] {
      return args->set_policy ? set_policy(context, args->name, *args->set_policy)
                              : reclaim(context, *args);
    };
  });
}

}  // namespace hvmm::client
