// GenerationAllocator: ids by generation, rollover reservation, per-slot flush requests,
// deactivation, exhaustion, and a randomized run against a reference model.
#include "hvmm/base/generation_allocator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

namespace hvmm {
namespace {

// The tests are single-threaded: this stands in for the caller's lock guard.
struct Unlocked {};

using Allocator = GenerationAllocator<4, 8>;

// One switch as the users do it: the lock-free path, else the locked one.
GenerationAssignment switch_to(Allocator& ids, std::atomic<uint64_t>& user, unsigned slot) {
  const uint64_t value = user.load();
  if (ids.try_fast(value, slot)) {
    return GenerationAssignment{.value = value};
  }
  return ids.assign(Unlocked{}, user, slot);
}

// Widths and slot counts beyond the storage are refused.
TEST(GenerationAllocator, InitRejectsWhatTheStorageCannotHold) {
  auto ids = std::make_unique<Allocator>();
  EXPECT_FALSE(ids->init(0, 1));
  EXPECT_FALSE(ids->init(5, 1));
  EXPECT_FALSE(ids->init(4, 0));
  EXPECT_FALSE(ids->init(4, 9));
  ASSERT_TRUE(ids->init(4, 8));
  EXPECT_EQ(ids->usable_ids(), 15u);
  EXPECT_EQ(ids->generation_of(ids->current()), 1u);
}

// The first generation hands out 1..2^bits-1, each once, without a flush or rollover.
TEST(GenerationAllocator, HandsOutEachIdOncePerGeneration) {
  auto ids = std::make_unique<Allocator>();
  ASSERT_TRUE(ids->init(3, 1));
  std::vector<std::atomic<uint64_t>> users(7);
  std::set<uint64_t> seen;
  for (auto& user : users) {
    const GenerationAssignment got = switch_to(*ids, user, 0);
    EXPECT_TRUE(got.fresh);
    EXPECT_FALSE(got.rolled_over);
    EXPECT_FALSE(got.flush);
    EXPECT_EQ(ids->generation_of(got.value), 1u);
    EXPECT_TRUE(seen.insert(ids->id_of(got.value)).second);
  }
  EXPECT_EQ(seen, (std::set<uint64_t>{1, 2, 3, 4, 5, 6, 7}));
}

// Exhaustion rolls over once; the user running on another slot keeps its id; every slot
// is asked to flush exactly once before using an id of the new generation.
TEST(GenerationAllocator, RolloverKeepsRunningIdsAndRequestsOneFlushPerSlot) {
  auto ids = std::make_unique<Allocator>();
  ASSERT_TRUE(ids->init(3, 2));
  std::vector<std::atomic<uint64_t>> users(9);
  const uint64_t kept = ids->id_of(switch_to(*ids, users[0], 1).value);
  for (int i = 1; i <= 6; ++i) {
    EXPECT_FALSE(switch_to(*ids, users[i], 0).rolled_over);
  }
  const GenerationAssignment eighth = switch_to(*ids, users[7], 0);
  EXPECT_TRUE(eighth.rolled_over);
  EXPECT_TRUE(eighth.flush);
  EXPECT_NE(ids->id_of(eighth.value), kept) << "the running user's id was handed out again";
  const GenerationAssignment back = switch_to(*ids, users[0], 1);
  EXPECT_EQ(ids->id_of(back.value), kept);
  EXPECT_TRUE(back.flush);
  EXPECT_FALSE(back.fresh);
  EXPECT_FALSE(switch_to(*ids, users[0], 1).flush);
  EXPECT_FALSE(switch_to(*ids, users[8], 0).flush);
}

// When every id is running somewhere after a rollover, assign returns 0, reports the
// rollover, and leaves the user without an id.
TEST(GenerationAllocator, ExhaustionReturnsZero) {
  auto ids = std::make_unique<Allocator>();
  ASSERT_TRUE(ids->init(2, 4));  // ids 1..3
  std::vector<std::atomic<uint64_t>> users(4);
  for (unsigned slot = 0; slot < 3; ++slot) {
    ASSERT_NE(switch_to(*ids, users[slot], slot).value, 0u);
  }
  const GenerationAssignment failed = switch_to(*ids, users[3], 3);
  EXPECT_EQ(failed.value, 0u);
  EXPECT_TRUE(failed.rolled_over);
  EXPECT_EQ(users[3].load(), 0u);
  ids->deactivate(1);  // now slot 1's id is free at the next rollover
  const GenerationAssignment retried = switch_to(*ids, users[3], 3);
  ASSERT_NE(retried.value, 0u);
  EXPECT_EQ(ids->id_of(retried.value), ids->id_of(users[1].load()));
}

// A slot deactivated after a rollover reset it still gets its flush at its next switch, even
// to a user whose id is current (the fast path must not skip it).
TEST(GenerationAllocator, DeactivateAfterRolloverKeepsTheFlushRequest) {
  auto ids = std::make_unique<Allocator>();
  ASSERT_TRUE(ids->init(2, 2));  // ids 1..3
  std::vector<std::atomic<uint64_t>> users(5);
  switch_to(*ids, users[0], 0);
  switch_to(*ids, users[1], 1);
  switch_to(*ids, users[2], 1);
  ASSERT_TRUE(switch_to(*ids, users[3], 1).rolled_over);  // slot 0 was reset
  ids->deactivate(0);
  ids->deactivate(0);                                               // twice: still parked, not idle
  const GenerationAssignment first = switch_to(*ids, users[3], 0);  // users[3] is current
  EXPECT_TRUE(first.flush);
  EXPECT_EQ(first.value, users[3].load());
  EXPECT_FALSE(switch_to(*ids, users[3], 0).flush);
}

// A deactivated slot reserves nothing, so its user's id is recycled by the next rollover.
TEST(GenerationAllocator, DeactivatedSlotReservesNothing) {
  auto ids = std::make_unique<Allocator>();
  ASSERT_TRUE(ids->init(2, 2));
  std::atomic<uint64_t> stopped{0};
  const uint64_t old_id = ids->id_of(switch_to(*ids, stopped, 0).value);
  ids->deactivate(0);
  std::set<uint64_t> handed_out;
  std::vector<std::unique_ptr<std::atomic<uint64_t>>> others;
  while (ids->generation_of(ids->current()) < 3) {
    others.push_back(std::make_unique<std::atomic<uint64_t>>(0));
    const GenerationAssignment got = switch_to(*ids, *others.back(), 1);
    if (ids->generation_of(got.value) == 2) {
      handed_out.insert(ids->id_of(got.value));
    }
  }
  EXPECT_EQ(handed_out.count(old_id), 1u) << "the stopped user's id was never recycled";
}

// The reference model of the randomized test: what each slot may still have cached (id ->
// user) since its last flush, who runs where, and who must keep its id.
struct Model {
  explicit Model(unsigned users, unsigned slots)
      : running(slots, -1), last_switch_generation(slots, 1), cached(slots), must_keep(users, 0) {}
  std::vector<int> running;  // user running on each slot, -1 for none
  std::vector<uint64_t> last_switch_generation;
  std::vector<std::map<uint64_t, int>> cached;
  std::vector<uint64_t> must_keep;  // per user: the id a rollover reserved for it, or 0
};

// Random switches and deactivations of 24 users on 6 slots with 7 ids, checked after every
// step: ids are unique among live users (current generation or reserved for a running slot);
// a slot is asked to flush exactly when a rollover happened since its last switch, and never
// reuses an id it cached for another user without that flush; a user running at a rollover
// keeps its id; a user of the current generation keeps its value.
TEST(GenerationAllocator, RandomizedAgainstReferenceModel) {
  constexpr unsigned kUsers = 24;
  constexpr unsigned kSlots = 6;
  auto ids = std::make_unique<Allocator>();
  ASSERT_TRUE(ids->init(3, kSlots));
  std::vector<std::atomic<uint64_t>> users(kUsers);
  Model model(kUsers, kSlots);
  std::mt19937_64 random(7);
  uint64_t rollovers = 0;
  for (int step = 0; step < 200000; ++step) {
    const auto slot = static_cast<unsigned>(random() % kSlots);
    const uint64_t generation_before = ids->generation_of(ids->current());
    if (random() % 5 == 0) {
      ids->deactivate(slot);
      model.running[slot] = -1;
      continue;
    }
    const auto user = static_cast<int>(random() % kUsers);
    const uint64_t old_value = users[user].load();
    const bool was_current = old_value != 0 && ids->is_current(old_value);
    std::vector<int> running_before = model.running;
    const GenerationAssignment got = switch_to(*ids, users[user], slot);
    ASSERT_NE(got.value, 0u) << "step " << step << ": 6 slots cannot exhaust 7 ids";
    ASSERT_EQ(got.value, users[user].load());
    ASSERT_TRUE(ids->is_current(got.value));
    const uint64_t id = ids->id_of(got.value);
    ASSERT_NE(id, 0u);
    const uint64_t generation = ids->generation_of(ids->current());
    ASSERT_EQ(got.rolled_over, generation != generation_before) << "step " << step;
    if (got.rolled_over) {
      ++rollovers;
      for (unsigned u = 0; u < kUsers; ++u) {
        model.must_keep[u] = 0;
      }
      for (int runner : running_before) {
        if (runner >= 0 && runner != user) {
          model.must_keep[runner] = ids->id_of(users[runner].load());
        }
      }
    }
    if (was_current) {
      ASSERT_EQ(got.value, old_value) << "step " << step << ": a current user lost its value";
    }
    if (model.must_keep[user] != 0) {
      ASSERT_EQ(id, model.must_keep[user]) << "step " << step << ": a reserved id was lost";
    }
    model.must_keep[user] = 0;
    // Flush exactly when the generation moved since this slot's last switch.
    ASSERT_EQ(got.flush, generation != model.last_switch_generation[slot]) << "step " << step;
    model.last_switch_generation[slot] = generation;
    if (got.flush) {
      model.cached[slot].clear();
    }
    const auto cached = model.cached[slot].find(id);
    ASSERT_TRUE(cached == model.cached[slot].end() || cached->second == user)
        << "step " << step << ": slot " << slot << " would use user " << cached->second
        << "'s translations for user " << user;
    model.cached[slot][id] = user;
    model.running[slot] = user;
    // Live users: current values, and values still running on a slot (reserved).
    std::map<uint64_t, int> owner_of_id;
    auto claim = [&](int u) {
      const auto [it, inserted] = owner_of_id.emplace(ids->id_of(users[u].load()), u);
      return inserted || it->second == u;
    };
    for (int u = 0; u < static_cast<int>(kUsers); ++u) {
      if (users[u].load() != 0 && ids->is_current(users[u].load())) {
        ASSERT_TRUE(claim(u)) << "step " << step << ": two current users share an id";
      }
    }
    for (int runner : model.running) {
      if (runner >= 0) {
        ASSERT_TRUE(claim(runner)) << "step " << step << ": a running user's id is shared";
      }
    }
  }
  EXPECT_GT(rollovers, 1000u);
}

}  // namespace
}  // namespace hvmm
