// The balloon figure kMemStats reports when no balloon driver is linked in: a weak
// definition, replaced by the driver's own (in a file of its own, so that no caller can
// have the default inlined).
#include "hvmm/guest/control_service.h"

namespace hvmm::guest {

// No balloon driver: the balloon holds nothing.
[[gnu::weak]] uint64_t balloon_held_pages() {
  return 0;
}

}  // namespace hvmm::guest
