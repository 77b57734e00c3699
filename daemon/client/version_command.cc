// version (and --version): the client's version, then the daemon's when it answers
// (DaemonService.GetDaemonInfo). An unreachable daemon is said, not an error: the client's
// version is still the answer.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <sstream>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/text.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;

// The daemon's figures in one line.
std::string daemon_text(const std::string& socket, const v1::GetDaemonInfoResponse& info) {
  return fmt::format(
      "hvmmd {} (pid {}, started {}, {} VMs, {} running, {}-bit VMIDs at generation {}, {} "
      "rollovers) at {}",
      info.version(), info.pid(), format_time(info.started_unix_ns()), info.vms(),
      info.running_vms(), info.vmid_bits(), info.vmid_generation(), info.vmid_rollovers(), socket);
}

// One line per warm pool: "warm pool 256 MiB/1: 2 of 2 ready, 0 building, RSS 4.10 MiB, 5
// taken, 1 missed".
std::string warm_pools_text(const v1::GetDaemonInfoResponse& info) {
  std::string text;
  for (const v1::WarmPoolStatus& pool : info.warm_pools()) {
    text += fmt::format(
        "warm pool {}/{}: {} of {} ready, {} building, RSS {}, {} taken, {} missed\n",
        args::human_size(pool.memory_bytes()), pool.vcpus(), pool.ready(), pool.target(),
        pool.building(), args::human_size(pool.rss_bytes()), pool.taken(), pool.missed());
  }
  return text;
}

}  // namespace

int print_versions(Context& context) {
  std::ostream& out = context.io().out;
  if (!context.json()) {
    out << "hvmm client " << client_version() << "\n";
  }
  // A quiet Context of its own, so an unreachable daemon prints nothing but the line below.
  std::ostringstream quiet;
  ClientIo probe_io{quiet, quiet, false};
  Context probe(probe_io);
  probe.socket_option() = context.socket();
  v1::GetDaemonInfoResponse info;
  grpc::Status status;
  if (auto channel = probe.channel()) {
    auto call = probe.call_within(std::chrono::seconds(5));
    status = v1::DaemonService::NewStub(channel)->GetDaemonInfo(call.get(),
                                                                v1::GetDaemonInfoRequest(), &info);
  } else {
    std::string why = quiet.str();
    why = why.substr(why.rfind("hvmm: ", 0) == 0 ? 6 : 0);
    status = grpc::Status(grpc::StatusCode::UNAVAILABLE, why.substr(0, why.find('\n')));
  }
  if (context.json()) {
    std::string daemon = "null";
    if (status.ok()) {
      std::ostringstream text;
      ClientIo json_io{text, text, false};
      Context printer(json_io);
      printer.print_json(info);
      daemon = text.str();
      daemon.pop_back();
    }
    out << fmt::format("{{\"client\":\"{}\",\"daemon\":{}}}\n", client_version(), daemon);
  } else if (status.ok()) {
    out << daemon_text(context.socket(), info) << "\n" << warm_pools_text(info);
  } else {
    out << fmt::format("hvmmd: not reachable at {} ({})\n", context.socket(),
                       status.error_message());
  }
  return 0;
}

void add_version_command(CLI::App& app, Context& context) {
  CLI::App* command = add_top_command(app, "version");
  command->callback(
      [&context] { context.action = [&context] { return print_versions(context); }; });
}

}  // namespace hvmm::client
