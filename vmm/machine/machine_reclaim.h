// MachineReclaim: one VM's reclaim, the pool, the window and the engine, wired together.
//
// Built by the Machine when its config has a reclaim policy, after the fault handler (whose
// userfaultfd, registered with write protection, the window protects pages with and whose
// threads bring reclaimed pages back) and after dirty tracking. The order of the parts:
// the pool (sized by the policy, with the swap file behind it if one was given), the
// Reclaimer (it attaches the pool to GuestPhysical, which the fault handler and VMM accesses
// load from), the engine (it receives the refault and VMM-access events, so it is attached
// as GuestPhysical's ReclaimEvents once it exists). start() runs epochs on the engine's
// thread; stop() must come before the fault handler stops: a window in progress waits on
// write-protect faults only the handler resolves.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "hvmm/base/result.h"
#include "hvmm/vmm/fault/userfault_fd.h"
#include "hvmm/vmm/memory/guest_physical.h"
#include "hvmm/vmm/reclaim/dirty/dirty_source.h"
#include "hvmm/vmm/reclaim/pool/compressed_pool.h"
#include "hvmm/vmm/reclaim/pool/swap_file.h"
#include "hvmm/vmm/reclaim/reclaim_engine.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"
#include "hvmm/vmm/reclaim/reclaim_stats.h"
#include "hvmm/vmm/reclaim/reclaim_store.h"
#include "hvmm/vmm/reclaim/reclaimer.h"

namespace hvmm::vmm {

// The reclaim figures of a VM at one moment (--stats, tests, the daemon).
struct ReclaimFigures {
  ReclaimStats stats;
  ReclaimStoreStats pool;
  WorkingSetEstimate working_set;
};

class MachineReclaim {
 public:
  // What the parts are built over. `on_fatal` stops the VM (data loss in an epoch).
  struct Parts {
    GuestPhysical& memory;
    Userfaultfd& uffd;
    DirtySource* dirty = nullptr;
    DirtyAccumulator* published = nullptr;  // where the engine's harvests go too (the dirty log)
    std::function<void(const Error&)> on_fatal;
  };

  static Result<std::unique_ptr<MachineReclaim>> create(Parts parts, const ReclaimPolicy& policy,
                                                        std::optional<SwapFile> swap);
  ~MachineReclaim();
  MachineReclaim(const MachineReclaim&) = delete;
  MachineReclaim& operator=(const MachineReclaim&) = delete;

  Result<void> start() { return engine_->start(); }
  // Stop the epochs (idempotent); the window in progress finishes first.
  void stop() { engine_->stop(); }

  ReclaimFigures figures() const;
  ReclaimEngine& engine() { return *engine_; }
  ReclaimPolicy policy() const { return engine_->policy(); }

 private:
  MachineReclaim() = default;

  std::unique_ptr<CompressedPool> pool_;
  std::unique_ptr<Reclaimer> reclaimer_;
  std::unique_ptr<ReclaimEngine> engine_;
};

}  // namespace hvmm::vmm
