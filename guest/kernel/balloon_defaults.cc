// The balloon figures kMemStats reports when no balloon driver is linked in: weak
// definitions, replaced by the driver's own (in their own file, so no call site in this
// translation unit could be folded to the default).
#include "hvmm/guest/control_service.h"

namespace hvmm::guest {

// No balloon driver: the balloon holds nothing.
[[gnu::weak]] uint64_t balloon_held_pages() {
  return 0;
}

// No balloon driver: nothing was reported.
[[gnu::weak]] uint64_t balloon_reported_pages() {
  return 0;
}

}  // namespace hvmm::guest
