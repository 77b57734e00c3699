// Tests of the AVL tree of VMAs against a std::map.
#include "hvmm/guest/mm/vma.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

namespace hvmm::guest::mm {
namespace {

// Overlapping inserts are refused; lookups find the containing and neighbouring areas.
TEST(VmaTree, InsertRefusesOverlapAndFinds) {
  VmaTree tree;
  Vma a{VirtAddr(0x1000), VirtAddr(0x3000)};
  Vma b{VirtAddr(0x5000), VirtAddr(0x6000)};
  Vma overlap{VirtAddr(0x2000), VirtAddr(0x5800)};
  ASSERT_TRUE(tree.insert(&a));
  ASSERT_TRUE(tree.insert(&b));
  EXPECT_FALSE(tree.insert(&overlap));
  EXPECT_EQ(tree.count(), 2u);
  EXPECT_EQ(tree.find(VirtAddr(0x2fff)), &a);
  EXPECT_EQ(tree.find(VirtAddr(0x3000)), nullptr);
  EXPECT_EQ(tree.find_next(VirtAddr(0x3000)), &b);
  EXPECT_EQ(tree.find_prev(VirtAddr(0x5000)), &a);
  EXPECT_EQ(tree.first(), &a);
  EXPECT_EQ(tree.last(), &b);
  EXPECT_EQ(VmaTree::next(&a), &b);
  EXPECT_EQ(VmaTree::prev(&b), &a);
  EXPECT_TRUE(tree.validate());
}

// Random inserts and erases keep the AVL invariants and agree with a std::map.
TEST(VmaTree, RandomizedAgainstMap) {
  constexpr uint64_t kSlots = 4000;
  std::vector<std::unique_ptr<Vma>> storage(kSlots);
  std::map<uint64_t, Vma*> model;
  VmaTree tree;
  std::mt19937_64 rng(5);
  for (int step = 0; step < 30000; ++step) {
    const uint64_t slot = rng() % kSlots;
    if (storage[slot] == nullptr) {
      storage[slot] = std::make_unique<Vma>();
      storage[slot]->start = VirtAddr(slot * 0x10000);
      storage[slot]->end = VirtAddr(slot * 0x10000 + 0x1000 * (1 + rng() % 16));
      ASSERT_TRUE(tree.insert(storage[slot].get()));
      model[storage[slot]->start.value()] = storage[slot].get();
    } else {
      tree.erase(storage[slot].get());
      model.erase(storage[slot]->start.value());
      storage[slot].reset();
    }
    if (step % 500 == 0) {
      ASSERT_TRUE(tree.validate()) << "step " << step;
    }
    const uint64_t probe = rng() % (kSlots * 0x10000);
    auto it = model.upper_bound(probe);
    Vma* expected = nullptr;
    if (it != model.begin() && std::prev(it)->second->end.value() > probe) {
      expected = std::prev(it)->second;
    }
    ASSERT_EQ(tree.find(VirtAddr(probe)), expected) << "probe " << probe;
    Vma* expected_next =
        expected != nullptr ? expected : (it == model.end() ? nullptr : it->second);
    ASSERT_EQ(tree.find_next(VirtAddr(probe)), expected_next);
    ASSERT_EQ(tree.count(), model.size());
  }
  ASSERT_TRUE(tree.validate());
  std::vector<Vma*> in_order;
  for (Vma* v = tree.first(); v != nullptr; v = VmaTree::next(v)) {
    in_order.push_back(v);
  }
  std::vector<Vma*> expected_order;
  for (auto& [start, vma] : model) {
    expected_order.push_back(vma);
  }
  EXPECT_EQ(in_order, expected_order);
}

}  // namespace
}  // namespace hvmm::guest::mm
