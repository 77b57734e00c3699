// VmManager: the daemon's VMs, their VM processes and the one VMID allocator they lease from.
//
// States: CREATED -> STARTING (process spawned, Launch sent) -> RUNNING (Event{started}) ->
// STOPPING (Stop, or Event{exiting}) -> STOPPED; FAILED when the VM could not be built or its
// process died without the VM ending (any exit status without Event{exiting}, any signal,
// SIGKILL included). A request the state does not allow is FAILED_PRECONDITION naming the
// state. Nothing is restarted: a VM that ended waits for Start or Delete.
//
// Each VM process holds one slot of the VmidAllocator from Start until it has been reaped;
// its VMID goes into Launch. A rollover's flush sends FlushStage2Tlb to every VM process that
// holds a slot. A VM process that ends is reported (Vm.exit with status or signal, reason and
// its last console lines, and the log), its slot is released, its pending requests fail with
// UNAVAILABLE and its streams end; nothing else is touched.
//
// Threading: every member runs on the event loop's thread (asio::post to it). Completions are
// called there too.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/daemon/server/fault_file.h"
#include "hvmm/daemon/server/vm_record.h"
#include "hvmm/daemon/server/warm_pool.h"

namespace hvmm::daemon {

using Deadline = std::chrono::steady_clock::time_point;

// A check of a forwarded request against what the daemon knows of the VM.
using RequestCheck = std::function<Result<void>(const VmFacts&)>;

class VmManager {
 public:
  struct Options {
    std::string state_dir;
    std::string vm_process;
    unsigned vmid_bits = 8;
    bool vm_seccomp = true;
    std::chrono::milliseconds list_deadline{250};
    std::chrono::milliseconds start_timeout{120000};
    // Warm start (warm_pool.h): pre-built VM processes per size; empty: none.
    std::vector<WarmPoolSize> warm_pools;
  };

  static Result<std::unique_ptr<VmManager>> create(boost::asio::io_context& io, Options options,
                                                   FaultFile* fault_file);
  ~VmManager();
  VmManager(const VmManager&) = delete;
  VmManager& operator=(const VmManager&) = delete;

  // Keep a new VM (its name and spec already checked): ALREADY_EXISTS for a taken name.
  grpc::Status add(const std::string& name, const hvmm::v1::VmSpec& spec, hvmm::v1::Vm* vm);
  // Start a CREATED, STOPPED or FAILED VM; with `wait`, complete once it runs or has ended.
  // A ready warm pool process of the spec's shape is taken when there is one (Vm.warm_start).
  // `requested_unix_ns` is when the client asked (Create with start); 0: now.
  void start(const std::string& name, bool wait, VmDone done, uint64_t requested_unix_ns = 0);
  // Stop a STARTING, RUNNING or STOPPING VM: Shutdown, then SIGKILL after `grace` (or at once
  // with `force`); completes once the process has ended.
  void stop(const std::string& name, std::chrono::milliseconds grace, bool force, VmDone done);
  // Forget a VM that is not running (with `force`, kill it first).
  void remove(const std::string& name, bool force, std::function<void(const grpc::Status&)> done);
  // Every VM (or one), with memory figures from the running ones that answer in time.
  void list(std::function<void(std::vector<hvmm::v1::Vm>)> done);
  void get(const std::string& name, VmDone done);

  // Check `name` and `check`, then send `request` to the RUNNING VM's process.
  void forward(const std::string& name, const RequestCheck& check, supervisor::Request request,
               Deadline deadline, ResponseHandler done);

  // Streams. The status is the reason a stream cannot start (the caller finishes it).
  grpc::Status watch_console(const std::string& name, bool history, bool follow,
                             const std::shared_ptr<ConsoleStream>& stream, uint64_t* id);
  void unwatch_console(const std::string& name, uint64_t id);
  grpc::Status watch_notifier(const std::string& name,
                              const hvmm::v1::WatchNotifierRequest& request,
                              const std::shared_ptr<NotifierStream>& stream, uint64_t* id);
  void unwatch_notifier(const std::string& name, uint64_t id);
  grpc::Status watch_faults(const hvmm::v1::WatchFaultsRequest& request,
                            const std::shared_ptr<FaultStream>& stream, uint64_t* id);
  void unwatch_faults(uint64_t id);
  // The VM's subscriptions, with one "watch" entry per WatchNotifier client added.
  void list_subscriptions(
      const std::string& name, Deadline deadline,
      std::function<void(const grpc::Status&, const hvmm::v1::ListSubscriptionsResponse*)> done);

  hvmm::v1::GetDaemonInfoResponse info() const;

  // Stop every VM (Shutdown, `grace`, SIGKILL), end every stream, then call `done`. Create
  // and Start are refused from now on.
  void shutdown(std::chrono::milliseconds grace, std::function<void()> done);
  bool shutting_down() const { return shutting_down_; }

  // For tests and the log: VMs that hold a VMID slot.
  size_t running_processes() const;

  // The RUNNING VMs' names and specs (for the host memory policy's rounds).
  struct RunningVm {
    std::string name;
    hvmm::v1::VmSpec spec;
  };
  std::vector<RunningVm> running_vms() const;
  // The warm pool, or nullptr without `warm-pool`; its rss_bytes() is what the ready pool
  // processes hold of the host's memory (for the host memory policy).
  const WarmPool* warm_pool() const { return warm_pool_.get(); }
  uint64_t warm_pool_rss_bytes() const { return warm_pool_ ? warm_pool_->rss_bytes() : 0; }

 private:
  VmManager(boost::asio::io_context& io, Options options, FaultFile* fault_file);

  VmRecord* find(const std::string& name);
  hvmm::v1::Vm describe(const VmRecord& vm) const;
  grpc::Status lookup(const std::string& name, VmRecord** vm);

  // Start's steps.
  grpc::Status lease_vmid(VmRecord& vm);
  void release_vmid(VmRecord& vm);
  grpc::Status launch(VmRecord& vm);
  void watch_process(VmRecord& vm);
  void watch_start(VmRecord& vm);
  void read_output(VmRecord& vm);
  void on_output_line(VmRecord& vm, std::string line);
  void on_event(const std::string& name, uint64_t run_id, const supervisor::Event& event);
  void on_channel_closed(const std::string& name, uint64_t run_id, const std::string& reason,
                         bool protocol_error);
  void on_process_exit(const std::string& name, uint64_t run_id);
  void maybe_finalize(VmRecord& vm);
  void finalize(VmRecord& vm);
  hvmm::v1::VmExit make_exit(const VmRecord& vm) const;
  void kill(VmRecord& vm, const std::string& reason);
  void complete_waiters(VmRecord& vm);
  void erase(const std::string& name);

  // Events.
  void on_started(VmRecord& vm, const supervisor::Started& started);
  void fan_out_notifier(VmRecord& vm, const hvmm::v1::NotifierEvent& event);
  void fan_out_fault(VmRecord& vm, hvmm::v1::Fault fault);
  void update_forwarding(VmRecord& vm);
  void end_streams(VmRecord& vm);

  // The rollover flush: every VM process holding a slot drops its stage-2 TLB.
  void flush_all_stage2_tlbs();

  boost::asio::io_context& io_;
  Options options_;
  FaultFile* fault_file_;
  std::unique_ptr<stage2::VmidAllocator> vmids_;
  std::vector<bool> slots_;  // slot -> in use
  std::map<std::string, std::unique_ptr<VmRecord>> vms_;
  struct FaultWatcher {
    uint64_t id;
    std::string vm;       // "" = every VM
    std::set<int> kinds;  // empty = every kind
    std::shared_ptr<FaultStream> stream;
  };
  std::vector<FaultWatcher> fault_watchers_;
  uint64_t next_run_id_ = 1;
  uint64_t next_watcher_id_ = 1;
  uint64_t started_unix_ns_ = 0;
  uint64_t flushes_sent_ = 0;
  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  std::unique_ptr<WarmPool> warm_pool_;
};

// The VmState's name without its prefix ("RUNNING").
std::string state_name(hvmm::v1::VmState state);

// Nanoseconds since the Unix epoch, now.
uint64_t unix_now_ns();

}  // namespace hvmm::daemon
