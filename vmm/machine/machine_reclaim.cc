// MachineReclaim: the pool, the window and the engine, in dependency order.
#include "hvmm/vmm/machine/machine_reclaim.h"

#include <fmt/format.h>

#include <cstdio>

namespace hvmm::vmm {

// Pool, window, engine; then the engine becomes the receiver of refault and VMM-access
// events (the window attached the pool with none, since the engine did not exist yet).
Result<std::unique_ptr<MachineReclaim>> MachineReclaim::create(Parts parts,
                                                               const ReclaimPolicy& policy,
                                                               std::optional<SwapFile> swap) {
  std::unique_ptr<MachineReclaim> reclaim(new MachineReclaim());
  PoolConfig pool;
  pool.codec = policy.codec;
  pool.limit_bytes = policy.effective_pool_limit(parts.memory.memory_size());
  pool.keep_threshold = policy.keep_threshold;
  pool.swap = std::move(swap);
  auto created = CompressedPool::create(std::move(pool));
  if (!created) {
    return make_error(created.error().code, "reclaim pool: {}", created.error().message);
  }
  reclaim->pool_ = std::move(*created);
  reclaim->reclaimer_ =
      std::make_unique<Reclaimer>(parts.memory, parts.uffd, *reclaim->pool_, nullptr);
  auto engine = ReclaimEngine::create(
      ReclaimEngine::Deps{
          .memory = parts.memory,
          .reclaimer = *reclaim->reclaimer_,
          .store = *reclaim->pool_,
          .dirty = parts.dirty,
          .published = parts.published,
          .log =
              [](const std::string& message) {
                fmt::print(stderr, "hvmm: reclaim: {}\n", message);
              },
          .on_fatal = std::move(parts.on_fatal),
      },
      policy);
  if (!engine) {
    return make_error(engine.error().code, "reclaim engine: {}", engine.error().message);
  }
  reclaim->engine_ = std::move(*engine);
  parts.memory.attach_reclaim_store(*reclaim->pool_, reclaim->engine_.get());
  return reclaim;
}

// The engine's thread first: it uses the window and the pool.
MachineReclaim::~MachineReclaim() {
  if (engine_) {
    engine_->stop();
  }
}

// One snapshot of each part (not one instant across them).
ReclaimFigures MachineReclaim::figures() const {
  return ReclaimFigures{engine_->stats(), pool_->stats(), engine_->working_set()};
}

}  // namespace hvmm::vmm
