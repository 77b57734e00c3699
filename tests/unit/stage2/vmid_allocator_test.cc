// VmidAllocator: uniqueness, rollover, reservation of running VMIDs, exhaustion, threads.
#include "hvmm/stage2/vmid_allocator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "hvmm/stage2/stage2_tlb.h"

namespace hvmm::stage2 {
namespace {

constexpr unsigned kSmallBits = 3;  // 7 usable VMIDs: rollovers happen quickly

// An allocator plus a count of flushes, the TLB stand-in.
struct Fixture {
  explicit Fixture(unsigned bits, unsigned slots) {
    auto created = VmidAllocator::create({.vmid_bits = bits, .running_slots = slots},
                                         [this] { flushes.fetch_add(1); });
    EXPECT_TRUE(created.ok());
    allocator = std::move(created).value();
  }
  std::atomic<int> flushes{0};
  std::unique_ptr<VmidAllocator> allocator;
};

// Bad widths and slot counts are rejected with a message naming them.
TEST(VmidAllocatorTest, RejectsBadOptions) {
  auto narrow = VmidAllocator::create({.vmid_bits = 1, .running_slots = 4}, [] {});
  ASSERT_FALSE(narrow.ok());
  EXPECT_NE(narrow.error().message.find("1 bits"), std::string::npos);
  EXPECT_FALSE(VmidAllocator::create({.vmid_bits = 17, .running_slots = 4}, [] {}).ok());
  EXPECT_FALSE(VmidAllocator::create({.vmid_bits = 8, .running_slots = 0}, [] {}).ok());
  EXPECT_FALSE(VmidAllocator::create({.vmid_bits = 8, .running_slots = 4}, nullptr).ok());
}

// Every VM active at once gets a distinct non-zero VMID, and none is handed out twice in 8 bits.
TEST(VmidAllocatorTest, LiveVmsHaveUniqueNonZeroVmids) {
  Fixture f(8, 255);
  std::vector<std::unique_ptr<VmVmid>> vms;
  std::set<uint16_t> seen;
  for (unsigned slot = 0; slot < 255; ++slot) {
    vms.push_back(std::make_unique<VmVmid>());
    auto vmid = f.allocator->activate(*vms.back(), slot);
    ASSERT_TRUE(vmid.ok()) << vmid.error().message;
    EXPECT_NE(*vmid, 0);
    EXPECT_TRUE(seen.insert(*vmid).second) << "VMID " << *vmid << " handed out twice";
  }
  EXPECT_EQ(f.flushes.load(), 0);
  EXPECT_EQ(f.allocator->rollovers(), 0u);
}

// Re-activating a VM of the current generation returns the same VMID without a flush.
TEST(VmidAllocatorTest, ReactivationKeepsVmid) {
  Fixture f(8, 2);
  VmVmid vm;
  const uint16_t first = *f.allocator->activate(vm, 0);
  EXPECT_EQ(*f.allocator->activate(vm, 0), first);
  EXPECT_EQ(*f.allocator->activate(vm, 1), first);
  EXPECT_EQ(f.allocator->vmid_of(vm.raw()), first);
  EXPECT_EQ(f.allocator->generation_of(vm.raw()), 1u);
}

// Using up the VMID space rolls over exactly once and flushes the TLB exactly once.
TEST(VmidAllocatorTest, RolloverFlushesOnce) {
  Fixture f(kSmallBits, 1);
  std::vector<std::unique_ptr<VmVmid>> vms;
  for (unsigned i = 0; i < 7; ++i) {
    vms.push_back(std::make_unique<VmVmid>());
    ASSERT_TRUE(f.allocator->activate(*vms.back(), 0).ok());
  }
  EXPECT_EQ(f.flushes.load(), 0);
  vms.push_back(std::make_unique<VmVmid>());
  auto eighth = f.allocator->activate(*vms.back(), 0);
  ASSERT_TRUE(eighth.ok());
  EXPECT_EQ(f.flushes.load(), 1);
  EXPECT_EQ(f.allocator->generation(), 2u);
  EXPECT_EQ(f.allocator->generation_of(vms.back()->raw()), 2u);
  EXPECT_NE(*eighth, 0);
}

// A VM running on a slot keeps its VMID across a rollover; an idle VM is renumbered lazily.
TEST(VmidAllocatorTest, RunningVmKeepsVmidAcrossRollover) {
  Fixture f(kSmallBits, 3);
  VmVmid running;
  const uint16_t kept = *f.allocator->activate(running, 0);
  std::vector<std::unique_ptr<VmVmid>> others;
  // Cycle other VMs through slot 1 until two rollovers happened.
  while (f.allocator->rollovers() < 2) {
    others.push_back(std::make_unique<VmVmid>());
    auto vmid = f.allocator->activate(*others.back(), 1);
    ASSERT_TRUE(vmid.ok());
    EXPECT_NE(*vmid, kept) << "the running VM's VMID was given to another VM";
  }
  EXPECT_EQ(f.flushes.load(), 2);
  EXPECT_EQ(*f.allocator->activate(running, 0), kept);
  EXPECT_EQ(f.allocator->generation_of(running.raw()), f.allocator->generation());
}

// After deactivate, a VM's VMID is not reserved and may be given to another VM.
TEST(VmidAllocatorTest, DeactivatedVmLosesReservation) {
  Fixture f(kSmallBits, 2);
  VmVmid stopped;
  const uint16_t old = *f.allocator->activate(stopped, 0);
  f.allocator->deactivate(0);
  std::set<uint16_t> handed_out;
  while (f.allocator->rollovers() < 1 || handed_out.size() < 7) {
    VmVmid other;
    handed_out.insert(*f.allocator->activate(other, 1));
    ASSERT_LT(f.allocator->rollovers(), 3u);
  }
  EXPECT_TRUE(handed_out.count(old) == 1) << "the stopped VM's VMID was never recycled";
}

// VMID 0 is never handed out, across many rollovers.
TEST(VmidAllocatorTest, VmidZeroNeverAppears) {
  Fixture f(kSmallBits, 2);
  for (int i = 0; i < 200; ++i) {
    VmVmid vm;
    auto vmid = f.allocator->activate(vm, static_cast<unsigned>(i % 2));
    ASSERT_TRUE(vmid.ok());
    ASSERT_NE(*vmid, 0);
  }
  EXPECT_GE(f.allocator->rollovers(), 20u);
  EXPECT_EQ(static_cast<uint64_t>(f.flushes.load()), f.allocator->rollovers());
}

// 16-bit mode hands out VMIDs above 255 before rolling over.
TEST(VmidAllocatorTest, SixteenBitMode) {
  Fixture f(16, 1);
  EXPECT_EQ(f.allocator->usable_vmids(), 65535u);
  uint16_t largest = 0;
  for (int i = 0; i < 1000; ++i) {
    VmVmid vm;
    largest = std::max(largest, *f.allocator->activate(vm, 0));
  }
  EXPECT_GT(largest, 255);
  EXPECT_EQ(f.flushes.load(), 0);
  EXPECT_EQ(f.allocator->vmid_bits(), 16u);
}

// More running VMs than VMIDs: the activation fails with an error naming the VMID space.
TEST(VmidAllocatorTest, ExhaustionNamesTheVmidSpace) {
  Fixture f(kSmallBits, 8);
  std::vector<std::unique_ptr<VmVmid>> vms;
  for (unsigned slot = 0; slot < 7; ++slot) {
    vms.push_back(std::make_unique<VmVmid>());
    ASSERT_TRUE(f.allocator->activate(*vms.back(), slot).ok());
  }
  VmVmid extra;
  auto failed = f.allocator->activate(extra, 7);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(failed.error().message.find("7 VMIDs of the 3-bit VMID space"), std::string::npos)
      << failed.error().message;
  // Stopping one VM makes room at the next attempt.
  f.allocator->deactivate(3);
  auto retried = f.allocator->activate(extra, 7);
  ASSERT_TRUE(retried.ok()) << retried.error().message;
  EXPECT_EQ(*retried, f.allocator->vmid_of(vms[3]->raw()));
}

// Wired to a Stage2Tlb as the daemon does, a rollover empties the TLB exactly once, so no
// entry tagged with a recycled VMID survives.
TEST(VmidAllocatorTest, RolloverFlushesTheStage2Tlb) {
  Stage2Tlb tlb(64);
  auto allocator =
      std::move(VmidAllocator::create({.vmid_bits = kSmallBits, .running_slots = 1}, [&tlb] {
        tlb.invalidate_all();
      })).value();
  alignas(kPageSize) static std::byte page[kPageSize];
  std::vector<std::unique_ptr<VmVmid>> vms;
  for (unsigned i = 0; i < 7; ++i) {
    vms.push_back(std::make_unique<VmVmid>());
    const uint16_t vmid = *allocator->activate(*vms.back(), 0);
    ASSERT_TRUE(tlb.fill(vmid, Ipa(0x1000), page, Access::kRead));
  }
  EXPECT_EQ(tlb.stats().full_invalidations, 0u);
  VmVmid recycled;
  const uint16_t vmid = *allocator->activate(recycled, 0);
  EXPECT_EQ(tlb.stats().full_invalidations, 1u);
  EXPECT_EQ(tlb.lookup(vmid, Ipa(0x1000), Access::kRead), nullptr)
      << "an entry of the VMID's previous owner survived the rollover";
}

// An out-of-range slot is an error, not a crash.
TEST(VmidAllocatorTest, BadSlotIsAnError) {
  Fixture f(8, 2);
  VmVmid vm;
  auto failed = f.allocator->activate(vm, 2);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kOutOfRange);
}

// Threads, one per slot, activate their own VMs concurrently with frequent rollovers. A
// {generation, vmid} value must never belong to two VMs: every value any thread observes is
// recorded with its owner, and a second owner is a violation.
TEST(VmidAllocatorTest, ConcurrentActivationsStayUnique) {
  constexpr unsigned kSlots = 4;
  Fixture f(4, kSlots);  // 15 VMIDs: frequent rollovers
  std::mutex owners_mutex;
  std::unordered_map<uint64_t, const VmVmid*> owners;
  std::atomic<int> violations{0};
  std::atomic<uint64_t> activations{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  std::latch start(kSlots);
  std::vector<std::jthread> threads;
  for (unsigned slot = 0; slot < kSlots; ++slot) {
    threads.emplace_back([&, slot] {
      start.arrive_and_wait();  // run the slots truly at once, not one after another
      std::mt19937 random(slot);
      std::vector<std::unique_ptr<VmVmid>> vms;
      // More VMs per slot than there are VMIDs: even a thread that happens to run alone
      // forces rollovers, so the test's power does not depend on the scheduler.
      for (int i = 0; i < 16; ++i)
        vms.push_back(std::make_unique<VmVmid>());
      for (int i = 0; i < 20000 && std::chrono::steady_clock::now() < deadline; ++i) {
        VmVmid& vm = *vms[random() % vms.size()];
        auto vmid = f.allocator->activate(vm, slot);
        if (!vmid.ok() || *vmid == 0 || f.allocator->vmid_of(vm.raw()) != *vmid) {
          violations.fetch_add(1);
          continue;
        }
        {
          std::lock_guard lock(owners_mutex);
          auto [owner, inserted] = owners.emplace(vm.raw(), &vm);
          if (!inserted && owner->second != &vm)
            violations.fetch_add(1);
        }
        activations.fetch_add(1);
        if (random() % 8 == 0)
          f.allocator->deactivate(slot);
        if (i % 16 == 0)
          std::this_thread::yield();  // interleave the slots even on few cores
      }
    });
  }
  threads.clear();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(activations.load(), 100u);
  EXPECT_GT(f.allocator->rollovers(), 10u);
  fmt::print("{} activations, {} rollovers\n", activations.load(), f.allocator->rollovers());
  EXPECT_EQ(static_cast<uint64_t>(f.flushes.load()), f.allocator->rollovers());
}

}  // namespace
}  // namespace hvmm::stage2
