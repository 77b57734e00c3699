// The VM process's life (vm_process.h).
#include "hvmm/daemon/vmproc/vm_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <optional>

#include "hvmm/daemon/channel/frame.h"
#include "hvmm/daemon/spec/vm_spec.h"
#include "hvmm/daemon/vmproc/channel_writer.h"
#include "hvmm/daemon/vmproc/launch.h"
#include "hvmm/daemon/vmproc/notifier_watch.h"
#include "hvmm/daemon/vmproc/outbound_queue.h"
#include "hvmm/daemon/vmproc/page_token.h"
#include "hvmm/daemon/vmproc/proto_convert.h"
#include "hvmm/daemon/vmproc/request_handlers.h"
#include "hvmm/daemon/vmproc/request_server.h"
#include "hvmm/daemon/vmproc/seccomp_filter.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::daemon::vmproc {
namespace {

using hvmm::supervisor::v1::Launch;
using hvmm::supervisor::v1::ToDaemon;
using hvmm::supervisor::v1::ToVm;

// The status a VM stopped because its daemon went away ends with: as if its terminal hung up.
constexpr int kExitDaemonGone = vmm::kExitSignalBase + SIGHUP;

// The daemon's death kills this process even if the channel somehow stays open; SIGINT and
// SIGTERM are blocked on every thread so only Machine::run's signalfd takes them; a closed
// console pipe must not kill the VM.
void prepare_process() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

// The next frame as a ToVm; a closed channel is the end before any Launch.
Result<ToVm> read_to_vm(FrameReader& reader) {
  auto frame = reader.read();
  HVMM_TRY(frame);
  if (!*frame) {
    return make_error(ErrorCode::kInvalidArgument,
                      "channel: closed before the Launch message arrived");
  }
  ToVm message;
  if (!message.ParseFromString(**frame)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "channel: the first message is not a Launch (ToVm.launch)");
  }
  return message;
}

// The frame after a Prepare, which must be a Launch.
Result<Launch> read_launch_after_prepare(FrameReader& reader) {
  auto message = read_to_vm(reader);
  HVMM_TRY(message);
  if (!message->has_launch()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "channel: the message after Prepare is not a Launch (ToVm.launch)");
  }
  return std::move(*message->mutable_launch());
}

ToDaemon prepared_event(vmm::Machine& machine, unsigned vcpus) {
  ToDaemon message;
  auto* prepared = message.mutable_event()->mutable_prepared();
  prepared->set_pid(::getpid());
  prepared->set_memory_bytes(machine.physical().memory_size());
  prepared->set_vcpus(vcpus);
  return message;
}

ToDaemon first_run_event(uint64_t unix_ns) {
  ToDaemon message;
  message.mutable_event()->mutable_first_run()->set_unix_ns(unix_ns);
  return message;
}

ToDaemon started_event(vmm::Machine& machine) {
  ToDaemon message;
  auto* started = message.mutable_event()->mutable_started();
  started->set_pid(::getpid());
  started->set_guest_cmdline(machine.guest_cmdline());
  started->set_memory_bytes(machine.physical().memory_size());
  return message;
}

ToDaemon exiting_event(int status, std::string reason) {
  ToDaemon message;
  auto* exiting = message.mutable_event()->mutable_exiting();
  exiting->set_status(status);
  exiting->set_reason(std::move(reason));
  return message;
}

// Report a failure to build (or sandbox) the VM, on the channel and on stderr.
int report_failure(OutboundQueue& queue, ChannelWriter& writer, const LaunchFailure& failure) {
  fmt::print(stderr, "{}", vmm::format_vmm_end_line(failure.message, failure.exit_status));
  queue.send(failed_event(failure));
  writer.finish();
  return failure.exit_status;
}

// Tests only (VmProcessOptions::test_forbidden_syscall): a network socket, which the filter
// does not allow; if it is allowed after all, say so, so the test fails with a reason.
void make_forbidden_syscall() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  fmt::print(stderr, "hvmm-vm: the forbidden socket() call was allowed (fd {})\n", fd);
  if (fd >= 0) {
    ::close(fd);
  }
}

// Everything that runs alongside the Machine once it is built.
class RunningVm {
 public:
  RunningVm(int fd, const Launch& launch, vmm::Machine& machine, OutboundQueue& queue)
      : fd_(fd),
        machine_(machine),
        queue_(queue),
        tokens_(PageTokens::with_random_key()),
        watch_(machine.physical().notifiers(),
               IpaRange{Ipa(0), machine.physical().map().space().size()},
               [&queue](hvmm::v1::NotifierEvent event) {
                 return queue.offer_notifier(std::move(event));
               }),
        context_{machine, launch.name(), launch.vmid(), watch_, tokens_, ended_} {
    machine.fault_log().set_sink(
        [&queue](const vmm::FaultRecord& record) { queue.offer_fault(fault_to_proto(record)); });
  }

  // Serve requests from `reader` (the bytes after the Launch) while the VM runs.
  void serve(FrameReader reader) {
    server_.emplace(
        std::move(reader), queue_,
        [this](const hvmm::supervisor::v1::Request& request) {
          return serve_request(context_, request);
        },
        [this](const std::string& why) { machine_.request_stop(kExitDaemonGone, why); });
  }

  // The VM has ended: refuse new requests, finish the ones in flight, stop forwarding.
  void finish() {
    ended_.store(true);
    ::shutdown(fd_, SHUT_RD);  // the reader's read returns: nothing more is taken
    if (server_) {
      server_->stop();
    }
    watch_.stop();
    machine_.fault_log().set_sink({});
  }

 private:
  int fd_;
  vmm::Machine& machine_;
  OutboundQueue& queue_;
  std::atomic<bool> ended_{false};
  PageTokens tokens_;
  NotifierWatch watch_;
  VmContext context_;
  std::optional<RequestServer> server_;
};

// Built: sandbox, announce, run, announce the end.
int run_machine(const VmProcessOptions& options, const Launch& launch, FrameReader reader,
                vmm::Machine& machine, OutboundQueue& queue, ChannelWriter& writer) {
  RunningVm running(options.channel_fd, launch, machine, queue);
  if (launch.seccomp()) {
    if (auto sandboxed = install_seccomp_filter(); !sandboxed) {
      return report_failure(queue, writer,
                            LaunchFailure{rpc_code(sandboxed.error().code),
                                          sandboxed.error().message, vmm::kExitSetupFailed});
    }
  } else {
    fmt::print(stderr, "hvmm-vm: seccomp off (Launch.seccomp is false)\n");
  }
  running.serve(std::move(reader));
  machine.on_first_run([&queue](uint64_t unix_ns) { queue.send(first_run_event(unix_ns)); });
  queue.send(started_event(machine));
  if (options.test_forbidden_syscall) {
    make_forbidden_syscall();
  }
  const int status = machine.run();
  running.finish();
  queue.send(exiting_event(status, machine.end_reason()));
  writer.finish();
  return status;
}

}  // namespace

int run_vm_process(const VmProcessOptions& options, std::span<const uint8_t> bundled_kernel) {
  if (::fcntl(options.channel_fd, F_SETFD, FD_CLOEXEC) != 0) {
    fmt::print(stderr, "hvmm-vm: --channel-fd {}: {}\n", options.channel_fd, std::strerror(errno));
    return vmm::kExitBadArguments;
  }
  prepare_process();
  OutboundQueue queue;
  std::atomic<vmm::Machine*> running{nullptr};
  ChannelWriter writer(options.channel_fd, queue, [&running](const Error& error) {
    // A daemon that closed its end may be seen here first, by an event's write, before the
    // reader sees the end of the stream: the same end, said the same way.
    if (vmm::Machine* machine = running.load()) {
      machine->request_stop(kExitDaemonGone,
                            error.code == ErrorCode::kUnavailable
                                ? std::string("the daemon closed the channel")
                                : fmt::format("the channel failed: {}", error.message));
    }
  });
  FrameReader reader(options.channel_fd);
  auto first = read_to_vm(reader);
  if (first && !first->has_launch() && !first->has_prepare()) {
    first = make_error(ErrorCode::kInvalidArgument,
                       "channel: the first message is not a Launch (ToVm.launch) or a Prepare");
  }
  if (!first) {
    return report_failure(
        queue, writer,
        LaunchFailure{rpc_code(first.error().code), first.error().message, vmm::kExitBadArguments});
  }
  Launch launch;
  BuiltMachine built;
  if (first->has_prepare()) {
    // Warm start: the spec-independent part now, the rest when the Launch comes.
    built = prepare_machine(first->prepare());
    if (built.failure) {
      return report_failure(queue, writer, *built.failure);
    }
    queue.send(prepared_event(*built.machine, first->prepare().vcpus()));
    auto next = read_launch_after_prepare(reader);
    if (!next) {
      return report_failure(
          queue, writer,
          LaunchFailure{rpc_code(next.error().code), next.error().message, vmm::kExitBadArguments});
    }
    launch = std::move(*next);
    if (auto failed = launch_prepared(launch, bundled_kernel, *built.machine)) {
      return report_failure(queue, writer, *failed);
    }
  } else {
    launch = std::move(*first->mutable_launch());
    built = build_machine(launch, bundled_kernel);
    if (built.failure) {
      return report_failure(queue, writer, *built.failure);
    }
  }
  running.store(built.machine.get());
  const int status = run_machine(options, launch, std::move(reader), *built.machine, queue, writer);
  running.store(nullptr);
  built.machine.reset();
  return status;
}

}  // namespace hvmm::daemon::vmproc
