// FaultHandler: userfaultfd MISSING (and WP) faults on guest RAM, resolved from page state.
//
// create() opens a Userfaultfd, registers every FaultRegion (the primary mapping KVM uses)
// and starts the handler threads. Each thread polls the userfaultfd and a stop eventfd, reads
// uffd_msg's in batches and, for a page fault:
//   - WP (UFFD_PAGEFAULT_FLAG_WP): tells the ReclaimedPages (an open reclaim window drops
//     the page), then lifts the protection of the page, which wakes the writer, and counts it;
//   - otherwise: takes the faulting thread's FaultWindow (tid from UFFD_FEATURE_THREAD_ID,
//     vCPU from the VcpuRegistry), asks the FaultResolver for the run inside the window,
//     zero fills it (ZeroFiller), reports it filled, and wakes the thread. A reclaimed run is
//     clipped to a small cluster around the faulting page, loaded from the ReclaimedPages
//     into a bounce buffer and copied in (RefaultFiller), reported filled (the resolver makes
//     it resident) and then refaulted() (its saved contents are dropped). A failure (no
//     ReclaimedPages, a load error) fails the fault and `stop` ends the VM; the thread stays
//     asleep until the VM's stop kicks it or the userfaultfd closes, and the handler goes on
//     answering other faults.
// Every fault is counted (FaultCounters) and logged through the FaultLog; UFFD_EVENT_REMOVE
// messages are counted and noted in the log. The handler never reads or writes guest memory
// itself: only the kernel fills pages, so nothing it does can fault on the registered range.
//
// Each thread publishes the fault it is resolving (IPA, since when) and a heartbeat; a
// FaultWatchdog reads them through health() to notice a stuck or dead handler.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/fault/fault_counts.h"
#include "hvmm/vmm/fault/fault_log.h"
#include "hvmm/vmm/fault/fault_resolver.h"
#include "hvmm/vmm/fault/fault_window.h"
#include "hvmm/vmm/fault/reclaimed_pages.h"
#include "hvmm/vmm/fault/refault_fill.h"
#include "hvmm/vmm/fault/vcpu_registry.h"
#include "hvmm/vmm/fault/zero_fill.h"

namespace hvmm::vmm {

// One registered stretch of guest RAM: `size` bytes at IPA `ipa`, mapped at `host` in the
// primary mapping (the one KVM's memslot uses) and `offset` bytes into the memfd.
struct FaultRegion {
  Ipa ipa;
  uint8_t* host = nullptr;
  HostOffset offset;
  uint64_t size = 0;
};

// Called once when the handler cannot go on: the exit status and a one-line reason.
using FaultStopCallback = std::function<void(int status, const std::string& reason)>;

struct FaultHandlerConfig {
  std::vector<FaultRegion> regions;
  int memfd = -1;                                  // the backing (for ZeroFillMethod::kFallocate)
  uint64_t max_window = FaultWindow::kDefaultMax;  // fault-around limit; 0: one page per fault
  bool adaptive_window = true;                     // false: every fault gets max_window
  ZeroFillMethod fill = ZeroFillMethod::kZeroPage;
  unsigned threads = 1;
  bool register_write_protect = false;  // also register WP (the reclaim window needs it)
  ReclaimedPages* reclaimed = nullptr;  // none: a reclaimed page's fault fails the VM
  uint64_t reclaimed_cluster = kDefaultReclaimedCluster;  // fault-around of reclaimed runs
  std::string vm = "run";
  uint32_t vmid = 0;
  FaultLog* log = nullptr;              // none: faults are only counted
  const VcpuRegistry* vcpus = nullptr;  // none: no fault is attributed to a vCPU
  FaultStopCallback stop;               // none: failures are only counted and logged
};

// What the watchdog sees of the handler.
struct FaultHandlerHealth {
  std::optional<Ipa> resolving;                 // the oldest fault being resolved
  std::chrono::steady_clock::time_point since;  // when its resolution began
  uint64_t heartbeat = 0;                       // messages handled + poll wake-ups
  bool pending = false;                         // messages wait to be read
};

class FaultHandler {
 public:
  // Open the userfaultfd, register the regions and start the threads. `resolver` must
  // outlive the handler (and, after a stop() that reports a stuck thread, the process).
  static Result<std::unique_ptr<FaultHandler>> create(FaultResolver& resolver,
                                                      FaultHandlerConfig config);
  ~FaultHandler();
  FaultHandler(const FaultHandler&) = delete;
  FaultHandler& operator=(const FaultHandler&) = delete;

  // Stop the threads and join them, waiting at most `grace` for each; a thread that does not
  // stop (stuck in the resolver) is left behind and named in the error.
  Result<void> stop(std::chrono::milliseconds grace = std::chrono::seconds(2));

  FaultCounts counts() const;
  FaultHandlerHealth health() const;
  // The userfaultfd (for tests that register more, and the watchdog's poll).
  Userfaultfd& uffd();

  struct State;  // shared with the threads, so a thread left behind keeps it alive

 private:
  explicit FaultHandler(std::shared_ptr<State> state) : state_(std::move(state)) {}

  std::shared_ptr<State> state_;
};

}  // namespace hvmm::vmm
