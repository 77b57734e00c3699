// notifier watch NAME [--range START:SIZE] and faults watch [NAME]: server streams printed
// one line (or one JSON object) per event until the stream ends or the user stops it.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/client/arg_values.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/text.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;

struct NotifierArgs {
  std::string name;
  std::string range;
  unsigned buffer = 0;
};

// "12:00:00.123456Z seq 42 start balloon [0x100000, 0x200000) 1.00 MiB".
std::string event_text(const v1::NotifierEvent& event) {
  return fmt::format("{} seq {} {} {} {} {}{}", format_time(event.time_unix_ns()), event.sequence(),
                     enum_word(v1::NotifierPhase_Name(event.phase()), "NOTIFIER_PHASE_"),
                     enum_word(v1::ChangeReason_Name(event.reason()), "CHANGE_REASON_"),
                     format_range(event.range().start(), event.range().size()),
                     args::human_size(event.range().size()),
                     event.blockable() ? "" : " (not blockable)");
}

// The fault log's fields in one line.
std::string fault_text(const v1::Fault& fault) {
  return fmt::format("{} vm {} vmid {} vcpu {} ipa {:#x} {} size {} {} -> {} in {}",
                     format_time(fault.time_unix_ns()), fault.vm(), fault.vmid(), fault.vcpu(),
                     fault.ipa(), enum_word(v1::Access_Name(fault.access()), "ACCESS_"),
                     fault.size(), enum_word(v1::FaultKind_Name(fault.kind()), "FAULT_KIND_"),
                     enum_word(v1::FaultResolution_Name(fault.resolution()), "FAULT_RESOLUTION_"),
                     args::human_duration_ns(fault.latency_ns()));
}

// Print every message of `reader` with `text` (or as JSON), then its status.
template <typename Message, typename Reader, typename Text>
int print_stream(Context& context, Reader& reader, Text text, const char* what) {
  Message message;
  while (reader->Read(&message)) {
    if constexpr (requires { message.dropped_before(); }) {
      if (message.dropped_before() != 0) {
        context.io().err << "hvmm: " << message.dropped_before() << " " << what
                         << " dropped (this client read too slowly)\n";
      }
    }
    if (context.json()) {
      context.print_json(message);
    } else {
      context.io().out << text(message) << "\n";
    }
    context.io().out.flush();
  }
  return context.finish(reader->Finish());
}

int watch_notifier(Context& context, const NotifierArgs& args) {
  v1::WatchNotifierRequest request;
  request.set_name(args.name);
  request.set_buffer(args.buffer);
  if (!args.range.empty()) {
    auto range = range_value("--range", args.range);
    if (!range) {
      return context.bad_argument(range.error().message);
    }
    request.mutable_filter()->set_start(range->start);
    request.mutable_filter()->set_size(range->size);
  }
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  grpc::ClientContext call;
  auto reader = v1::NotifierService::NewStub(channel)->Watch(&call, request);
  return print_stream<v1::NotifierEvent>(context, reader, event_text, "events");
}

int watch_faults(Context& context, const v1::WatchFaultsRequest& request) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  grpc::ClientContext call;
  auto reader = v1::FaultService::NewStub(channel)->Watch(&call, request);
  return print_stream<v1::Fault>(context, reader, fault_text, "fault records");
}

void declare_notifier(CLI::App& app, Context& context) {
  CLI::App* notifier = add_top_command(app, "notifier");
  notifier->require_subcommand(1);
  auto args = std::make_shared<NotifierArgs>();
  CLI::App* watch = notifier->add_subcommand(
      "watch", "Print the VM's stage-2 invalidations (range, reason, phase) as they happen");
  add_vm_name(*watch, args->name);
  watch->add_option("--range", args->range, "Only events overlapping this IPA range")
      ->type_name("START:SIZE");
  watch
      ->add_option("--buffer", args->buffer,
                   "Events queued for this client before it is dropped (default 4096)")
      ->type_name("N");
  watch->callback([&context, args] {
    context.action = [&context, args] { return watch_notifier(context, *args); };
  });
}

void declare_faults(CLI::App& app, Context& context) {
  CLI::App* faults = add_top_command(app, "faults");
  faults->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  auto buffer = std::make_shared<unsigned>(0);
  CLI::App* watch = faults->add_subcommand(
      "watch", "Print stage-2 fault records (the fault log's fields) of one VM or of all");
  watch->add_option("NAME", *name, "Only this VM (default: every VM)");
  watch
      ->add_option("--buffer", *buffer,
                   "Records queued for this client before they are dropped (default 4096)")
      ->type_name("N");
  watch->callback([&context, name, buffer] {
    auto request = std::make_shared<v1::WatchFaultsRequest>();
    request->set_name(*name);
    request->set_buffer(*buffer);
    context.action = [&context, request] { return watch_faults(context, *request); };
  });
}

}  // namespace

void add_watch_commands(CLI::App& app, Context& context) {
  declare_notifier(app, context);
  declare_faults(app, context);
}

}  // namespace hvmm::client
