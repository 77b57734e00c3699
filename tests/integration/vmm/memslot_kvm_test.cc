// Integration test of memslot realization against real KVM: the slots MemslotSync derives
// from the stage-2 map are accepted by KVM as the map changes.
#include <gtest/gtest.h>

#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/kvm/kvm_memslots.h"
#include "hvmm/vmm/memory/guest_physical.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

// Unmapping pieces of RAM (splitting 2 MiB blocks) is realized on KVM without errors, and
// the installed slots always cover exactly the resident RAM.
TEST(MemslotKvm, UnmapIsRealizedOnKvm) {
  HVMM_SKIP_WITHOUT_KVM();
  auto kvm = Kvm::open();
  ASSERT_TRUE(kvm.ok()) << kvm.error().message;
  auto vm = KvmVm::create(*kvm);
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  auto physical = GuestPhysical::create(64 << 20, "memslot-kvm", 1);
  ASSERT_TRUE(physical.ok());
  KvmMemslots sink(*vm);
  ASSERT_TRUE((*physical)->attach_memslots(sink).ok());
  ASSERT_EQ((*physical)->memslots()->slots().size(), 1u);
  ASSERT_TRUE((*physical)->unmap_ram(IpaRange{Ipa(0x300000), 0x3000}).ok());
  ASSERT_TRUE((*physical)->unmap_ram(IpaRange{Ipa(0x1000000), 0x200000}).ok());
  const auto& slots = (*physical)->memslots()->slots();
  ASSERT_EQ(slots.size(), 3u);
  EXPECT_EQ(slots[0].range, (IpaRange{Ipa(0), 0x300000}));
  EXPECT_EQ(slots[1].range, (IpaRange{Ipa(0x303000), 0x1000000 - 0x303000}));
  EXPECT_EQ(slots[2].range, (IpaRange{Ipa(0x1200000), (64 << 20) - 0x1200000}));
  EXPECT_EQ(slots[2].offset, HostOffset(0x1200000));
}

}  // namespace
}  // namespace hvmm::vmm
