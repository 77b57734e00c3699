// Human-readable names of stage-2 attributes, change reasons and page states.
#include "hvmm/stage2/attributes.h"

#include "hvmm/stage2/change.h"

namespace hvmm::stage2 {

std::string permissions_name(Permissions permissions, bool executable) {
  std::string name = "---";
  if (allows_read(permissions))
    name[0] = 'r';
  if (allows_write(permissions))
    name[1] = 'w';
  if (executable)
    name[2] = 'x';
  return name;
}

const char* memory_type_name(MemoryType type) {
  switch (type) {
    case MemoryType::kDeviceNGnRnE:
      return "device-ngnrne";
    case MemoryType::kDeviceNGnRE:
      return "device-ngnre";
    case MemoryType::kNormalNonCacheable:
      return "normal-nc";
    case MemoryType::kNormalWriteBack:
      return "normal-wb";
  }
  return "memattr-other";
}

const char* shareability_name(Shareability shareability) {
  switch (shareability) {
    case Shareability::kNonShareable:
      return "non";
    case Shareability::kOuterShareable:
      return "outer";
    case Shareability::kInnerShareable:
      return "inner";
  }
  return "sh-reserved";
}

const char* backing_name(Backing backing) {
  switch (backing) {
    case Backing::kResident:
      return "resident";
    case Backing::kBallooned:
      return "ballooned";
    case Backing::kReclaimed:
      return "reclaimed";
    case Backing::kReported:
      return "reported";
  }
  return "backing-reserved";
}

const char* change_reason_name(ChangeReason reason) {
  switch (reason) {
    case ChangeReason::kMap:
      return "map";
    case ChangeReason::kUnmap:
      return "unmap";
    case ChangeReason::kProtect:
      return "protect";
    case ChangeReason::kPageState:
      return "page-state";
    case ChangeReason::kBalloon:
      return "balloon";
    case ChangeReason::kReclaim:
      return "reclaim";
    case ChangeReason::kMemslot:
      return "memslot";
    case ChangeReason::kSnapshot:
      return "snapshot";
    case ChangeReason::kAging:
      return "aging";
    case ChangeReason::kFreePageReport:
      return "free-page-report";
    case ChangeReason::kFault:
      return "fault";
    case ChangeReason::kShootdown:
      return "shootdown";
  }
  return "unknown";
}

}  // namespace hvmm::stage2
