// VmRecord: everything the daemon keeps of one VM, and of its VM process while it runs.
// Owned by VmManager; touched only on the event loop's thread.
#pragma once

#include <sys/types.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/daemon/server/console_ring.h"
#include "hvmm/daemon/server/queued_stream.h"
#include "hvmm/daemon/server/request_check.h"
#include "hvmm/daemon/server/vm_channel.h"
#include "hvmm/daemon/server/vm_process.h"
#include "hvmm/stage2/vmid_allocator.h"
#include "hvmm/v1/service.pb.h"

namespace hvmm::daemon {

using ConsoleStream = QueuedStream<hvmm::v1::ConsoleLine>::State;
using NotifierStream = QueuedStream<hvmm::v1::NotifierEvent>::State;
using FaultStream = QueuedStream<hvmm::v1::Fault>::State;

// Completion of a lifecycle request: the status and, when OK, the VM as it is then.
using VmDone = std::function<void(const grpc::Status&, const hvmm::v1::Vm*)>;

// One WatchNotifier client of a VM.
struct NotifierWatcher {
  uint64_t id = 0;
  std::optional<hvmm::v1::IpaRange> filter;  // none: every event
  std::shared_ptr<NotifierStream> stream;
};

// One StreamConsole client (follow) of a VM.
struct ConsoleWatcher {
  uint64_t id = 0;
  std::shared_ptr<ConsoleStream> stream;
};

// The VM process while it exists: spawned, until it has been reaped and its output drained.
struct RunningProcess {
  RunningProcess(boost::asio::io_context& io, uint64_t run_id_in)
      : run_id(run_id_in), pidfd(io), output(io), kill_timer(io), drain_timer(io) {}

  uint64_t run_id;  // tells this run's callbacks from a later run's
  pid_t pid = -1;
  boost::asio::posix::stream_descriptor pidfd;
  boost::asio::posix::stream_descriptor output;
  std::shared_ptr<std::array<char, 16384>> output_buffer =
      std::make_shared<std::array<char, 16384>>();
  LineSplitter splitter;
  std::shared_ptr<VmChannel> channel;
  boost::asio::steady_timer kill_timer;   // the stop grace
  boost::asio::steady_timer drain_timer;  // how long output may lag the exit
  std::optional<ProcessEnd> end;          // reaped
  bool output_done = false;
  bool killed = false;  // the daemon sent SIGKILL
  std::string kill_reason;
  std::optional<supervisor::Failed> failed;
  std::optional<supervisor::Exiting> exiting;
  bool started = false;  // Event{started} seen
};

struct VmRecord {
  std::string name;
  hvmm::v1::VmSpec spec;
  VmFacts facts;
  hvmm::v1::VmState state = hvmm::v1::VM_STATE_CREATED;
  uint64_t created_unix_ns = 0;
  uint64_t started_unix_ns = 0;
  // The last Start: from the warm pool, when it was asked for, when the guest first ran.
  bool warm_start = false;
  uint64_t start_requested_unix_ns = 0;
  uint64_t first_run_unix_ns = 0;
  std::optional<hvmm::v1::VmExit> exit;

  // VMID: the VM's {generation, vmid} in the daemon's allocator, and its slot while running.
  stage2::VmVmid vmid_state;
  uint32_t vmid = 0;
  uint64_t vmid_generation = 0;
  std::optional<unsigned> slot;

  std::unique_ptr<RunningProcess> process;
  ConsoleRing console;
  std::vector<ConsoleWatcher> console_watchers;
  std::vector<NotifierWatcher> notifier_watchers;
  std::vector<hvmm::v1::IpaRange> forwarded_filters;  // what the VM process was last told
  bool forwarding_all = false;
  bool forwarding = false;
  uint64_t watch_clients_dropped = 0;
  uint64_t notifier_events_lost = 0;  // Event{dropped} of the VM process
  uint64_t faults_lost = 0;

  bool stop_requested = false;
  bool delete_requested = false;
  std::vector<VmDone> start_waiters;  // Start(wait): RUNNING or an end
  std::vector<VmDone> end_waiters;    // Stop, Delete(force): the end
};

}  // namespace hvmm::daemon
