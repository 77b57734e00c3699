// Integration tests of the Machine's memory controls under KVM (machine.h, "Memory
// controls"): the bundled guest kernel runs in this process with the control channel and
// KVM's dirty log, one VM for the whole suite (booting is the slow part under nested KVM).
// A stage-2 shootdown of all of RAM makes KVM's own stage-2 tables lose the pages a held
// workload mapped (its binary stats: pages_4k), keeps every byte (the workload verifies),
// and the guest's re-touch is a fresh KVM translation per page (pf_fixed grows by at least
// the pages verified). An invalidation reaches the subscribers of its range with its reason;
// aging counts young pages; the dirty log holds exactly the known pages a probe wrote; a
// probe of the MMIO hole reads all-ones and is counted as an unbacked read. Nothing here
// asserts a time (nested KVM is slow); latencies are reported.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "guest_kernel_suite.h"
#include "guest_kernel_vm.h"
#include "hvmm/vmm/boot/boot_data.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using std::chrono::seconds;
using testing::GuestKernelVm;
using testing::GuestKernelVmOptions;
using testing::kMiB;

constexpr uint64_t kMemory = 256 * kMiB;
constexpr uint64_t kWorkloadPages = 4096;  // 16 MiB held by a ring-3 workload
constexpr seconds kWorkloadTimeout{120};
constexpr seconds kRequestTimeout{30};
// Where nothing is: inside the MMIO hole, above the virtio-mmio windows (0xd0000000 on) and
// below the IOAPIC (0xfec00000).
constexpr uint64_t kNothingThere = 0xe0000000;
// Low memory the guest kernel reserves and leaves alone (below 1 MiB, above the boot data and
// the AP trampoline page 0x8000): the probe's writes there disturb nothing.
constexpr uint64_t kScratchBase = 0x20000;
constexpr uint32_t kStartInfoMagic = 0x336ec578;  // hvm_start_info.magic

// All the pages KVM's stage-2 tables map, whatever their size.
uint64_t mapped_pages(const KvmMmuStats& stats) {
  return stats.pages_4k + stats.pages_2m * 512 + stats.pages_1g * 512 * 512;
}

// Records what a notifier subscription is told.
class RecordingOps final : public stage2::IntervalOps {
 public:
  bool invalidate_range_start(const stage2::Change& change) override {
    std::lock_guard guard(lock);
    starts.push_back(change);
    return true;
  }
  void invalidate_range_end(const stage2::Change& change) override {
    std::lock_guard guard(lock);
    ends.push_back(change);
  }
  std::mutex lock;
  std::vector<stage2::Change> starts;
  std::vector<stage2::Change> ends;
};

// One booted guest kernel with dirty logging for every test of the suite.
class MemoryControls : public testing::GuestKernelSuite<MemoryControls> {
 public:
  static GuestKernelVmOptions vm_options() {
    GuestKernelVmOptions options;
    options.memory = kMemory;
    options.dirty_tracking = DirtyTracking::kLog;
    return options;
  }
};

// The shootdown of all of RAM: KVM's stage-2 tables lose at least the workload's pages, the
// VMM's TLB its entries, the memfd nothing; the workload then verifies byte for byte, and the
// guest's re-touch of its pages made at least one fresh KVM translation per page.
TEST_F(MemoryControls, ShootdownDropsKvmTranslationsAndKeepsContents) {
  if (!machine().kvm_mmu_stats().available) {
    GTEST_SKIP() << "skip: this KVM has no binary stats (KVM_CAP_BINARY_STATS_FD), so its "
                    "translations cannot be counted";
  }
  auto touched = vm_->touch(kWorkloadPages * kPageSize, 77, /*hold=*/true, kWorkloadTimeout);
  ASSERT_TRUE(touched.ok()) << touched.error().message << "\nconsole:\n" << console();
  ASSERT_EQ(touched->pages, kWorkloadPages);
  const uint64_t allocated = *machine().physical().allocated_bytes();
  const FaultCounts faults_before = machine().fault_counts();
  const Stage2TlbFigures tlb_before = machine().stage2_tlb_figures();

  auto shot = machine().shootdown_stage2(all_ram());
  ASSERT_TRUE(shot.ok()) << shot.error().message;
  EXPECT_EQ(shot->range, all_ram());
  EXPECT_EQ(shot->pages, kMemory / kPageSize);
  EXPECT_FALSE(shot->mechanism.empty());
  EXPECT_GT(shot->latency_ns, 0u);
  EXPECT_TRUE(shot->kvm_before.available);
  const uint64_t before = mapped_pages(shot->kvm_before);
  const uint64_t after = mapped_pages(shot->kvm_after);
  EXPECT_GE(before, kWorkloadPages) << "KVM did not map the workload's pages";
  EXPECT_LE(after + kWorkloadPages, before) << "KVM kept the pages mapped";
  EXPECT_GT(machine().stage2_tlb_figures().invalidations, tlb_before.invalidations);
  EXPECT_EQ(*machine().physical().allocated_bytes(), allocated) << "the shootdown lost memory";
  EXPECT_EQ(machine().fault_counts().removes, faults_before.removes + 1)
      << "one madvise, one userfaultfd REMOVE event";

  auto verified = vm_->verify(touched->workload, kWorkloadTimeout);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->mismatched_pages, 0u);
  EXPECT_EQ(verified->checksum, touched->checksum);
  const KvmMmuStats retouched = machine().kvm_mmu_stats();
  const uint64_t fixed = retouched.pf_fixed - shot->kvm_after.pf_fixed;
  EXPECT_GE(fixed, kWorkloadPages) << "the re-touch did not go through KVM's fault path";
  EXPECT_GE(mapped_pages(retouched), kWorkloadPages);
  EXPECT_LT(machine().fault_counts().of_kind(FaultKind::kMissing) -
                faults_before.of_kind(FaultKind::kMissing),
            kWorkloadPages / 8)
      << "the re-touch came through userfaultfd: the pages were lost, not just unmapped";
  std::printf(
      "shootdown: %llu pages, %llu TLB entries, %llu ns; KVM mapped %llu -> %llu pages, "
      "re-touch: pf_fixed +%llu, pf_taken +%llu, mapped %llu\n",
      static_cast<unsigned long long>(shot->pages),
      static_cast<unsigned long long>(shot->tlb_entries_dropped),
      static_cast<unsigned long long>(shot->latency_ns), static_cast<unsigned long long>(before),
      static_cast<unsigned long long>(after), static_cast<unsigned long long>(fixed),
      static_cast<unsigned long long>(retouched.pf_taken - shot->kvm_after.pf_taken),
      static_cast<unsigned long long>(mapped_pages(retouched)));
  RecordProperty("kvm_mapped_before", static_cast<int>(before));
  RecordProperty("kvm_mapped_after", static_cast<int>(after));
  RecordProperty("pf_fixed_retouch", static_cast<int>(fixed));
  RecordProperty("latency_ns", static_cast<int>(shot->latency_ns));
  ASSERT_TRUE(vm_->exit_workload(touched->workload, kRequestTimeout).ok());
}

// Bad ranges are refused with a message starting "range: ", and nothing is dropped.
TEST_F(MemoryControls, BadRangesAreRefused) {
  auto misaligned = machine().shootdown_stage2(IpaRange{Ipa(0x1000), 0x800});
  ASSERT_FALSE(misaligned.ok());
  EXPECT_EQ(misaligned.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(misaligned.error().message, "range: [0x1000, 0x1800) is not page aligned");
  auto empty = machine().invalidate(IpaRange{Ipa(0x1000), 0}, stage2::ChangeReason::kShootdown);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().message.rfind("range: ", 0), 0u) << empty.error().message;
  auto outside = machine().age(IpaRange{Ipa(uint64_t{1} << 40), kPageSize}, false);
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().code, ErrorCode::kOutOfRange);
  auto wrapping =
      machine().take_dirty_log(IpaRange{Ipa(~uint64_t{0} & ~(kPageSize - 1)), kPageSize});
  ASSERT_FALSE(wrapping.ok());
  EXPECT_EQ(wrapping.error().message.rfind("range: ", 0), 0u) << wrapping.error().message;
}

// An invalidation tells the subscriptions overlapping its range (start then end, with its
// reason and no map change) and no other, counts them, and drops KVM's translations too.
TEST_F(MemoryControls, InvalidateReachesOverlappingSubscribers) {
  RecordingOps inside;
  RecordingOps elsewhere;
  const IpaRange watched{Ipa(64 * kMiB), 16 * kMiB};
  auto sub_inside = machine().physical().notifiers().subscribe(watched, &inside);
  auto sub_elsewhere =
      machine().physical().notifiers().subscribe(IpaRange{Ipa(200 * kMiB), kMiB}, &elsewhere);
  ASSERT_TRUE(sub_inside.ok() && sub_elsewhere.ok());
  const uint64_t mapped_before = mapped_pages(machine().kvm_mmu_stats());
  const IpaRange range{Ipa(0), 128 * kMiB};
  auto done = machine().invalidate(range, stage2::ChangeReason::kBalloon);
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_GE(done->subscribers, 2u) << "ours and the translator's (it watches all of the space)";
  EXPECT_GT(done->latency_ns, 0u);
  {
    std::lock_guard guard(inside.lock);
    ASSERT_EQ(inside.starts.size(), 1u);
    ASSERT_EQ(inside.ends.size(), 1u);
    EXPECT_EQ(inside.starts[0].range, range);
    EXPECT_EQ(inside.starts[0].reason, stage2::ChangeReason::kBalloon);
    EXPECT_EQ(inside.starts[0].kind, stage2::ChangeKind::kInvalidate);
    EXPECT_TRUE(inside.starts[0].blockable);
  }
  {
    std::lock_guard guard(elsewhere.lock);
    EXPECT_TRUE(elsewhere.starts.empty());
  }
  EXPECT_EQ(sub_inside->sequence() % 2, 0u) << "the invalidation did not end";
  if (machine().kvm_mmu_stats().available) {
    std::printf("invalidate: KVM mapped %llu pages before, %llu after\n",
                static_cast<unsigned long long>(mapped_before),
                static_cast<unsigned long long>(mapped_pages(machine().kvm_mmu_stats())));
  }
}

// RAM is mapped young; clear_young counts and clears it, and a test right after finds at
// most the few 2 MiB leaves the VMM's devices touched meanwhile.
TEST_F(MemoryControls, AgeCountsAndClears) {
  auto tested = machine().age(all_ram(), false);
  ASSERT_TRUE(tested.ok()) << tested.error().message;
  auto cleared = machine().age(all_ram(), true);
  ASSERT_TRUE(cleared.ok());
  EXPECT_TRUE(tested->young);
  EXPECT_GT(tested->young_pages, 0u);
  EXPECT_GE(cleared->young_pages, tested->young_pages) << "nothing clears between the two";
  auto after = machine().age(all_ram(), false);
  ASSERT_TRUE(after.ok());
  EXPECT_LE(after->young_pages, 4u * 512u) << "clear_young left leaves young";
  std::printf("age: %llu young, cleared %llu, then %llu\n",
              static_cast<unsigned long long>(tested->young_pages),
              static_cast<unsigned long long>(cleared->young_pages),
              static_cast<unsigned long long>(after->young_pages));
}

// The dirty log after draining holds the pages the guest wrote through probes, each once,
// and a take of part of RAM reports only that part (the rest waits for its own take).
TEST_F(MemoryControls, DirtyLogHoldsTheProbedPages) {
  auto drained = machine().take_dirty_log(all_ram());
  ASSERT_TRUE(drained.ok()) << drained.error().message;
  ASSERT_TRUE(machine().take_dirty_log(all_ram()).ok());  // what the first take ran over
  std::set<uint64_t> written;
  for (uint64_t i = 0; i < 24; ++i) {
    const uint64_t ipa = kScratchBase + (i * 3) * kPageSize + (i % 4) * 4;
    ASSERT_TRUE(vm_->probe(ipa, true, static_cast<uint32_t>(0xd1e70000 + i), kRequestTimeout).ok());
    written.insert(ipa / kPageSize);
  }
  const IpaRange low{Ipa(0), kMiB};
  auto part = machine().take_dirty_log(low);
  ASSERT_TRUE(part.ok()) << part.error().message;
  std::set<uint64_t> logged;
  for (const IpaRange& run : part->dirty) {
    EXPECT_TRUE(low.contains(run.start) && run.end() <= low.end()) << "a run outside the range";
    for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p) {
      EXPECT_TRUE(logged.insert(p).second) << "page " << p << " reported twice";
    }
  }
  for (uint64_t page : written) {
    EXPECT_EQ(logged.count(page), 1u) << "probed page " << page << " is not in the log";
  }
  EXPECT_EQ(part->dirty_pages, logged.size());
  EXPECT_LE(logged.size(), written.size() + 8) << "low memory the kernel never writes";
  EXPECT_GT(part->interval_ns, 0u);
  for (uint64_t i = 0; i < 24; ++i) {
    uint32_t word = 0;
    const uint64_t ipa = kScratchBase + (i * 3) * kPageSize + (i % 4) * 4;
    ASSERT_TRUE(
        machine().physical().read(Ipa(ipa), std::span(reinterpret_cast<uint8_t*>(&word), 4)).ok());
    EXPECT_EQ(word, 0xd1e70000 + i) << "the probe's write did not reach memory";
  }
  std::printf("dirty log: %zu probed pages, %llu logged below 1 MiB\n", written.size(),
              static_cast<unsigned long long>(part->dirty_pages));
}

// A workload's pages are all in the log (it wrote them), with few more.
TEST_F(MemoryControls, DirtyLogHoldsAWorkload) {
  ASSERT_TRUE(machine().take_dirty_log(all_ram()).ok());
  ASSERT_TRUE(machine().take_dirty_log(all_ram()).ok());
  auto touched = vm_->touch(1024 * kPageSize, 5, /*hold=*/false, kWorkloadTimeout);
  ASSERT_TRUE(touched.ok()) << touched.error().message;
  auto log = machine().take_dirty_log(all_ram());
  ASSERT_TRUE(log.ok()) << log.error().message;
  EXPECT_GE(log->dirty_pages, 1024u);
  EXPECT_LE(log->dirty_pages, 1024u + 1024u / 64 + 256);
  for (size_t i = 1; i < log->dirty.size(); ++i) {
    EXPECT_LT(log->dirty[i - 1].end(), log->dirty[i].start) << "runs not coalesced or sorted";
  }
}

// A probe where nothing is reads all-ones and counts one unbacked read; a write there is
// dropped and counted; RAM reads what the loader wrote (the start info's magic).
TEST_F(MemoryControls, ProbeOfTheMmioHoleIsAnUnbackedAccess) {
  const FaultCounts before = machine().fault_counts();
  auto read = vm_->probe(kNothingThere, false, 0, kRequestTimeout);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(*read, 0xffffffffu);
  FaultCounts after = machine().fault_counts();
  EXPECT_EQ(after.faults[static_cast<size_t>(FaultKind::kMmioUnbacked)]
                        [static_cast<size_t>(FaultResolution::kReadAllOnes)] -
                before.faults[static_cast<size_t>(FaultKind::kMmioUnbacked)]
                             [static_cast<size_t>(FaultResolution::kReadAllOnes)],
            1u);
  ASSERT_TRUE(vm_->probe(kNothingThere + 0x40, true, 0x1234, kRequestTimeout).ok());
  const FaultCounts written = machine().fault_counts();
  EXPECT_EQ(written.faults[static_cast<size_t>(FaultKind::kMmioUnbacked)]
                          [static_cast<size_t>(FaultResolution::kWriteDropped)] -
                after.faults[static_cast<size_t>(FaultKind::kMmioUnbacked)]
                            [static_cast<size_t>(FaultResolution::kWriteDropped)],
            1u);
  for (int i = 0; i < 2; ++i) {
    auto magic = vm_->probe(kStartInfoAddress.value(), false, 0, kRequestTimeout);
    ASSERT_TRUE(magic.ok()) << magic.error().message;
    EXPECT_EQ(*magic, kStartInfoMagic);
  }
  control::ControlRequest bad{};
  bad.op = control::Op::kProbe;
  bad.args.probe = {0x6001, 0, 0};
  auto refused =
      machine().control_channel()->call(bad, std::chrono::steady_clock::now() + kRequestTimeout);
  ASSERT_TRUE(refused.ok()) << refused.error().message;
  EXPECT_EQ(refused->status, control::Status::kBadArguments);
}

// flush_stage2_tlb_all counts as a full flush; the TLB figures follow.
TEST_F(MemoryControls, FlushAllIsCounted) {
  const Stage2TlbFigures before = machine().stage2_tlb_figures();
  machine().flush_stage2_tlb_all();
  const Stage2TlbFigures after = machine().stage2_tlb_figures();
  EXPECT_EQ(after.flushes_all, before.flushes_all + 1);
  EXPECT_EQ(after.invalidations, before.invalidations + 1);
  EXPECT_GT(after.hits + after.misses, 0u) << "the control channel's rings go through the TLB";
}

// Without reclaim the reclaim controls are refused, saying why.
TEST_F(MemoryControls, ReclaimControlsNeedReclaim) {
  auto run = machine().reclaim_now(1);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(run.error().message.find("no reclaim"), std::string::npos) << run.error().message;
  auto set = machine().set_reclaim_policy(ReclaimPolicy{});
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().code, ErrorCode::kFailedPrecondition);
}

// A VM built without dirty tracking (never run: the check needs no guest) refuses the log.
TEST(MemoryControlsOff, DirtyLogNeedsDirtyTracking) {
  HVMM_SKIP_WITHOUT_KVM();
  if (auto why = testing::guest_kernel_unavailable_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
#ifdef HVMM_GUEST_KERNEL_ELF
  MachineConfig config;
  config.memory_size = 64 * kMiB;
  auto kernel = read_file(HVMM_GUEST_KERNEL_ELF, "--kernel", config.memory_size);
  ASSERT_TRUE(kernel.ok()) << kernel.error().message;
  config.kernel = std::move(*kernel);
  config.console_input = false;
  auto machine = Machine::create(std::move(config));
  ASSERT_TRUE(machine.ok()) << machine.error().message;
  auto log = (*machine)->take_dirty_log(IpaRange{Ipa(0), 64 * kMiB});
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(log.error().message.find("dirty tracking is off"), std::string::npos)
      << log.error().message;
#endif
}

}  // namespace
}  // namespace hvmm::vmm
