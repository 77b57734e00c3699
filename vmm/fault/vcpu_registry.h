// VcpuRegistry: which vCPU a thread id is, so a userfaultfd fault (which names the faulting
// thread, UFFD_FEATURE_THREAD_ID) is attributed to its vCPU. The Machine adds each vCPU
// thread when it starts; the fault handler looks the faulting thread up. Thread-safe.
#pragma once

#include <sys/types.h>

#include <optional>
#include <shared_mutex>
#include <unordered_map>

namespace hvmm::vmm {

class VcpuRegistry {
 public:
  // Record that thread `tid` runs vCPU `index` (replacing what the tid was before).
  void add(pid_t tid, unsigned index) {
    std::unique_lock guard(lock_);
    vcpus_[tid] = index;
  }
  // Forget thread `tid` (its vCPU stopped).
  void remove(pid_t tid) {
    std::unique_lock guard(lock_);
    vcpus_.erase(tid);
  }
  // The vCPU thread `tid` runs, or none for a thread that is no vCPU.
  std::optional<unsigned> find(pid_t tid) const {
    std::shared_lock guard(lock_);
    auto it = vcpus_.find(tid);
    return it == vcpus_.end() ? std::nullopt : std::optional<unsigned>(it->second);
  }

 private:
  mutable std::shared_mutex lock_;
  std::unordered_map<pid_t, unsigned> vcpus_;
};

}  // namespace hvmm::vmm
