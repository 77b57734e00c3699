// The Machine's temporary balloon backend: punch holes in the memfd behind released runs.
#include "hvmm/vmm/machine/guest_memory_balloon_backend.h"

#include <algorithm>

namespace hvmm::vmm {

// Nothing to do: a released page reads as zero when touched again.
Result<void> GuestMemoryBalloonBackend::deflate(std::span<const IpaRange> /*runs*/) {
  return Ok();
}

// Release the part of each run inside each RAM region at that region's host offset.
Result<void> GuestMemoryBalloonBackend::release(std::span<const IpaRange> runs) {
  for (const IpaRange& run : runs) {
    for (const RamRegion& region : physical_.ram()) {
      const Ipa start = std::max(run.start, region.range.start);
      const Ipa end = std::min(run.end(), region.range.end());
      if (start >= end) {
        continue;
      }
      const HostOffset offset = region.offset + (start - region.range.start);
      auto released = physical_.memory().release(offset, end - start);
      if (!released) {
        return make_error(released.error().code, "releasing balloon run {}: {}", run,
                          released.error().message);
      }
      released_ += end - start;
    }
  }
  return Ok();
}

}  // namespace hvmm::vmm
