// HostPolicy: the host memory policy on the daemon's event loop (policy/ decides, this runs it).
//
// Every interval_ms a round: sample the host (host-meminfo, host-pressure), ask each RUNNING
// VM for GetMemoryStats through VmManager::forward (a VM that does not answer within the
// round's deadline is skipped this round), add the VM processes' RSS and the warm pool's
// (warm_pool_rss, 0 until set), let the Engine decide, then carry each decision out through
// the same channel (policy/actuator.h), one VM's requests in order. Nothing here blocks the
// loop; a round still waiting for its VMs or actions when the timer fires is not overlapped
// (the tick is skipped). Every decision is logged (vm, action, bytes, reason), kept (the last
// 100) and pushed to the WatchDecisions streams.
//
// Threading: every member runs on the event loop's thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hvmm/daemon/server/policy/engine.h"
#include "hvmm/daemon/server/queued_stream.h"
#include "hvmm/daemon/server/vm_manager.h"
#include "hvmm/v1/policy.pb.h"

namespace hvmm::daemon {

using DecisionStream = QueuedStream<hvmm::v1::PolicyDecisionEvent>::State;

class HostPolicy {
 public:
  struct Options {
    std::string meminfo_path = "/proc/meminfo";
    std::string pressure_path = "/proc/pressure/memory";
    hvmm::v1::HostPolicy initial;  // checked (policy/settings.h)
  };
  static constexpr size_t kKeptDecisions = 100;

  HostPolicy(boost::asio::io_context& io, VmManager& vms, Options options);
  HostPolicy(const HostPolicy&) = delete;
  HostPolicy& operator=(const HostPolicy&) = delete;

  void start();
  // No more rounds; the streams end.
  void stop();

  // The warm pool's RSS, counted into the VM RSS of every sample.
  void set_warm_pool_rss(std::function<uint64_t()> warm_pool_rss);

  hvmm::v1::GetHostPolicyResponse status() const;
  // Replace the policy (already checked) and run a round now.
  hvmm::v1::HostPolicy set(const hvmm::v1::HostPolicy& policy);
  void watch(bool history, const std::shared_ptr<DecisionStream>& stream, uint64_t* id);
  void unwatch(uint64_t id);

 private:
  struct Gather;
  void schedule();
  void begin_round();
  void decide(Gather& gather);
  void carry_out_next();
  void send_next(std::shared_ptr<std::vector<supervisor::Request>> requests, size_t next,
                 policy::Decision decision, hvmm::v1::HostSample sample);
  void record(const policy::Decision& decision, const hvmm::v1::HostSample& sample, bool dry_run,
              const std::string& error);
  void actions_done();

  boost::asio::io_context& io_;
  VmManager& vms_;
  Options options_;
  hvmm::v1::HostPolicy policy_;  // with defaults
  boost::asio::steady_timer timer_;
  std::function<uint64_t()> warm_pool_rss_;
  policy::Engine engine_;
  hvmm::v1::HostSample last_sample_;
  std::vector<hvmm::v1::VmPolicyStatus> last_vms_;
  std::deque<hvmm::v1::PolicyDecision> recent_;
  struct Watcher {
    uint64_t id;
    std::shared_ptr<DecisionStream> stream;
  };
  std::vector<Watcher> watchers_;
  uint64_t next_watcher_id_ = 1;
  uint64_t next_sequence_ = 1;
  uint64_t round_id_ = 0;
  bool round_busy_ = false;              // gathering stats or carrying out decisions
  std::deque<policy::Decision> queued_;  // the round's decisions not carried out yet
  bool rerun_ = false;                   // set() during a busy round: run again once it ends
  bool stopped_ = false;
  std::string last_sample_error_;
};

// A policy::HostSample as the API reports it.
hvmm::v1::HostSample sample_to_proto(const policy::HostSample& sample);

}  // namespace hvmm::daemon
