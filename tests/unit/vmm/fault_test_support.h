// Helpers of the fault handler tests: a memfd with a registered (primary) and an alias
// mapping, and a FaultResolver that keeps page conditions in a vector.
#pragma once

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hvmm/vmm/fault/fault_handler.h"
#include "hvmm/vmm/fault/userfault_fd.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm::testing {

inline constexpr Ipa kRamBase{0x40000000};  // a non-zero IPA, so translation is exercised

// Why userfaultfd cannot be used here, or "" when it can.
inline std::string userfaultfd_unavailable() {
  auto probe = Userfaultfd::open();
  return probe.ok() ? std::string() : probe.error().message;
}

// A memfd of `size` bytes mapped twice: `primary` (to register) and `alias` (never registered).
struct TestMemory {
  explicit TestMemory(uint64_t bytes) : size(bytes) {
    fd = UniqueFd(::memfd_create("hvmm-fault-test", MFD_CLOEXEC));
    if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      return;
    }
    primary = map();
    alias = map();
  }
  Mapping map() const {
    void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    return address == MAP_FAILED ? Mapping() : Mapping(address, size);
  }
  // The one region covering the whole memfd at kRamBase.
  FaultRegion region() const { return FaultRegion{kRamBase, primary.data(), HostOffset(0), size}; }
  // Bytes of the memfd that hold blocks (what a fill allocated).
  uint64_t allocated() const {
    struct stat st {};
    ::fstat(fd.get(), &st);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }

  uint64_t size;
  UniqueFd fd;
  Mapping primary;
  Mapping alias;
};

// FakeResolver: one PageCondition per page; finish(filled) makes the run present.
class FakeResolver : public FaultResolver {
 public:
  explicit FakeResolver(uint64_t pages) : conditions(pages, PageCondition::kAbsent) {}

  // The run of `ipa`'s condition inside `window`, as the interface asks.
  Result<FaultRun> classify(Ipa ipa, IpaRange window) override {
    if (on_classify) {
      on_classify(ipa);
    }
    std::lock_guard guard(lock);
    ++classified;
    const uint64_t page = index(ipa);
    const PageCondition condition = conditions[page];
    uint64_t first = page;
    while (first > index(window.start) && conditions[first - 1] == condition)
      --first;
    uint64_t last = page + 1;
    while (last < index(window.end()) && conditions[last] == condition)
      ++last;
    return FaultRun{IpaRange{kRamBase + first * kPageSize, (last - first) * kPageSize}, condition};
  }
  // Filled runs become present.
  void finish(const FaultRun& run, bool filled) override {
    std::lock_guard guard(lock);
    ++finished;
    if (filled) {
      for (uint64_t p = index(run.range.start); p < index(run.range.end()); ++p) {
        conditions[p] = PageCondition::kPresent;
      }
    }
  }
  // Set the condition of pages [first, first + count).
  void set(uint64_t first, uint64_t count, PageCondition condition) {
    std::lock_guard guard(lock);
    for (uint64_t p = first; p < first + count; ++p)
      conditions[p] = condition;
  }
  static uint64_t index(Ipa ipa) { return (ipa - kRamBase) / kPageSize; }

  std::mutex lock;
  std::vector<PageCondition> conditions;
  uint64_t classified = 0;
  uint64_t finished = 0;
  std::function<void(Ipa)> on_classify;  // runs before classifying (outside the lock)
};

}  // namespace hvmm::vmm::testing
