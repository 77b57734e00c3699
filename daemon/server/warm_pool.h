// WarmPool: pre-built VM processes per memory size (warm start), kept ready for Start.
//
// For each `warm-pool` size (warm_pool_sizes.h) the pool spawns VM processes the way Start
// does (vm_process.h), sends each a Prepare (channel.proto) and keeps the ones that answer
// Event{prepared}: their KVM VM, irqchip, RAM and memslots exist, the memslots' SRCU wait is
// paid. A Start whose spec has that size and vCPU count and needs no dirty tracking or
// reclaim takes one (take()): the VM record adopts the process, its channel and its output,
// and sends the Launch. The pool refills in the background, one spawn at a time, starting
// once the VM served has run (so a refill never competes with the warm start it follows). A pool
// process that fails to prepare, breaks the protocol or dies is logged and replaced (after
// a back-off that grows while they keep failing: a host without /dev/kvm does not spin);
// it is never a VM's failure. shutdown() kills them all and reaps them.
//
// Threading: the event loop's thread only, like VmManager.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/daemon/server/vm_channel.h"
#include "hvmm/daemon/server/warm_pool_sizes.h"
#include "hvmm/v1/service.pb.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::daemon {

// A prepared VM process handed to a VM: its pid, pidfd, output pipe and started channel.
struct WarmProcess {
  pid_t pid = -1;
  vmm::UniqueFd pidfd;
  vmm::UniqueFd output;
  std::shared_ptr<VmChannel> channel;
};

class WarmPool {
 public:
  struct Options {
    std::string vm_process;
    std::vector<WarmPoolSize> sizes;
    // A pool process that has not said Prepared by then is killed and replaced.
    std::chrono::milliseconds prepare_timeout{60000};
  };

  WarmPool(boost::asio::io_context& io, Options options);
  ~WarmPool();
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  // Begin filling every size to its count.
  void start();
  // A ready process for a Start of `spec`, or none (the Start is cold). A spec of a pool's
  // size and vCPUs that finds none ready, or needs dirty tracking or reclaim, counts as missed.
  std::optional<WarmProcess> take(const hvmm::v1::VmSpec& spec);
  // The VM a take() served has run (or ended): refill now rather than at the hold-back's end.
  void resume_refill();
  // Stop refilling, kill every pool process and reap it (waits for them: the daemon ends).
  void shutdown();

  // Each size's target, ready and building counts, RSS and taken/missed totals.
  std::vector<hvmm::v1::WarmPoolStatus> status() const;
  // The RSS of the ready processes (VmRSS of /proc/PID/status): what the pool holds of the
  // host's memory, for the host memory policy.
  uint64_t rss_bytes() const;
  // Pool processes alive (ready, building or dying), for tests and the log.
  size_t processes() const { return entries_.size(); }

 private:
  struct Entry {
    Entry(boost::asio::io_context& io, uint64_t id_in, size_t size_in)
        : id(id_in), size(size_in), pidfd(io), output(io), timer(io) {}
    uint64_t id;
    size_t size;  // index into options_.sizes
    pid_t pid = -1;
    boost::asio::posix::stream_descriptor pidfd;
    boost::asio::posix::stream_descriptor output;
    std::shared_ptr<std::array<char, 4096>> buffer = std::make_shared<std::array<char, 4096>>();
    std::shared_ptr<VmChannel> channel;
    boost::asio::steady_timer timer;  // the prepare timeout
    bool ready = false;
    bool dying = false;  // killed or failed: waits to be reaped
  };
  struct Counts {
    uint64_t taken = 0;
    uint64_t missed = 0;
  };

  void refill();
  void schedule_refill(std::chrono::milliseconds delay);
  void spawn(size_t size);
  void watch_exit(Entry& entry);
  void read_output(Entry& entry);
  void on_event(uint64_t id, const supervisor::Event& event);
  void on_exit(uint64_t id);
  // Kill a pool process that will not become ready; it is reaped when its pidfd says so.
  void discard(Entry& entry, const std::string& why);
  Entry* find(uint64_t id);
  unsigned count(size_t size, bool ready) const;

  boost::asio::io_context& io_;
  Options options_;
  std::map<uint64_t, std::unique_ptr<Entry>> entries_;
  std::vector<Counts> counts_;
  boost::asio::steady_timer refill_timer_;     // back-off after a failure
  boost::asio::steady_timer hold_back_timer_;  // the longest a take holds the refill back
  uint64_t next_id_ = 1;
  bool building_ = false;      // one spawn at a time
  bool holding_back_ = false;  // a take's VM is launching: no refill yet
  bool stopped_ = false;
  unsigned failures_in_a_row_ = 0;
};

// VmRSS of /proc/PID/status in bytes; 0 when the process is gone.
uint64_t process_rss_bytes(pid_t pid);

}  // namespace hvmm::daemon
