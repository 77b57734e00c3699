// GuestPhysical: one VM's guest-physical space, the stage-2 map plus the memory behind it.
//
// RAM regions are mapped into the VM's Stage2Map with host offsets into one memfd
// (GuestMemory). The map is the source of truth for every page; it is realized in two
// independent ways:
// - the layout (which IPA ranges are RAM) as one KVM memslot per RAM region (memslots.h),
//   created once by attach_memslots() and changed only by unmap_ram(), which is fenced: the
//   owner's callbacks (Machine: park the vCPUs at their VcpuGate) run around it, because KVM
//   deletes and recreates a slot non-atomically;
// - the state of each page (resident, ballooned, reported, reclaimed) on the memfd
//   (page_realization.h): set_backing() and make_resident() change it while vCPUs run. A
//   page that stops being resident is punched out of the memfd; one that becomes resident
//   again is filled on its next touch (or by the caller of make_resident()).
// VMM-side reads and writes go through the map's Translator (stage-2 TLB first, then a walk
// of the map) over the memfd's alias mapping, which checks residency, permissions and bounds.
//
// Hooks on the map, in order: MMU notifiers (subscribers may refuse a non-blockable change,
// and then nothing is committed), stage-2 TLB invalidation, page counts, realization.
// Locking: the map is not internally synchronized. The Translator, page_counts() and the
// initial memslot install take the lock shared; every change takes it exclusively for the
// change and its realization. The layout fence runs before the lock is taken, so no vCPU
// exit handler is blocked on the lock while the fence waits for it.
//
// GuestPhysical is also the userfaultfd handler's FaultResolver (guest_physical_faults.cc):
// classify() takes the map lock exclusively and finish() releases it, so no state change
// can touch a run between its classification and its fill.
//
// Reclaim (guest_physical_reclaim.cc): the reclaim window (vmm/reclaim/reclaimer.h) opens
// over resident pages, and its commit makes the pages nobody wrote meanwhile reclaimed
// (punched), under the map lock; the ReclaimWindow records the writes. GuestPhysical is the
// fault handler's ReclaimedPages too (loads from the attached ReclaimStore, WP faults mark
// the window), and VMM accesses of reclaimed pages restore them first
// (guest_physical_access.cc). A page's store entry is erased only under the exclusive map
// lock, by the change that makes it resident again or gives up reclaiming it, so an erase
// can never hit the entry of a later window.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "hvmm/stage2/mmu_notifier.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/stage2/stage2_tlb.h"
#include "hvmm/stage2/table_allocator.h"
#include "hvmm/stage2/translator.h"
#include "hvmm/vmm/fault/fault_resolver.h"
#include "hvmm/vmm/fault/reclaimed_pages.h"
#include "hvmm/vmm/memory/guest_access.h"
#include "hvmm/vmm/memory/guest_memory.h"
#include "hvmm/vmm/memory/memory_layout.h"
#include "hvmm/vmm/memory/memslots.h"
#include "hvmm/vmm/memory/page_counts.h"
#include "hvmm/vmm/memory/page_realization.h"
#include "hvmm/vmm/memory/reclaim_window.h"
#include "hvmm/vmm/reclaim/page_reclaimer.h"
#include "hvmm/vmm/reclaim/reclaim_store.h"

namespace hvmm::vmm {

// What a batch of page-state changes did: one change per run of coalesced PFNs, each run
// independent of the others (a run that fails does not stop the rest).
struct BackingBatch {
  PageCounts changed;  // pages that changed, by the backing they had before
  uint64_t runs = 0;   // runs asked for
  uint64_t failed_runs = 0;
  std::optional<Error> first_error;
};

// A run of pages a reclaim window took, contiguous in IPA and in host offsets from `offset`.
struct WindowRun {
  IpaRange range;
  HostOffset offset;
};

// What a reclaim window's commit did with the pages the store kept (each list sorted).
struct WindowCommit {
  std::vector<Ipa> reclaimed;  // now reclaimed: punched, the contents in the store
  std::vector<Ipa> aborted;    // written (or under a VMM access) while open: left resident
  std::vector<Ipa> skipped;    // their state changed while open, or the change failed
  std::optional<Error> error;  // the first failed change or punch
};

class GuestPhysical final : public GuestAccess, public FaultResolver, public ReclaimedPages {
 public:
  // Fills pages that make_resident() made resident, before anyone else can touch them:
  // `run` is a run of IPA contiguous in host offsets from `output`.
  using Fill = std::function<Result<void>(IpaRange run, HostOffset output)>;

  // Create `memory_size` bytes of RAM laid out by ram_layout() and mapped in a new map.
  static Result<std::unique_ptr<GuestPhysical>> create(uint64_t memory_size,
                                                       const std::string& name, uint16_t vmid);
  GuestPhysical(std::unique_ptr<GuestMemory> memory, std::vector<RamRegion> ram, uint16_t vmid);
  ~GuestPhysical() override;
  GuestPhysical(const GuestPhysical&) = delete;
  GuestPhysical& operator=(const GuestPhysical&) = delete;

  // Install one memslot per RAM region through `sink`, kept for the VM's life. Holds the map
  // lock only shared across the KVM ioctls, so it may run on another thread while guest
  // memory is accessed; map changes wait for it. Call once.
  Result<void> attach_memslots(MemslotSink& sink);
  // Callbacks run around every layout change (unmap_ram): `pause` before, `resume` after.
  // Page-state changes are never fenced.
  void set_layout_fence(std::function<void()> pause, std::function<void()> resume);
  // Tag this VM's stage-2 TLB entries with `vmid` from now on (a prepared VM gets its VMID
  // only at launch). Call before any guest memory access: nothing is cached under the old one.
  void set_vmid(uint16_t vmid);

  // GuestAccess through the Translator. Reclaimed pages are restored from the attached store
  // first (a load error is returned: the caller fails its request), a write marks the pages
  // of an open reclaim window written before it copies anything, and the access is reported
  // to the attached events (writes always, reads when they restored pages).
  Result<void> read(Ipa ipa, std::span<uint8_t> out) override;
  Result<void> write(Ipa ipa, std::span<const uint8_t> data) override;

  // Give every page of `run` the backing `backing`, without pausing vCPUs, as one change
  // (one notifier invalidation with `reason`). Pages already in that state are left alone;
  // when all are, nothing happens. Making pages non-resident punches them out of the memfd
  // (balloon inflate: kBallooned, free page reporting: kReported). Making them resident
  // (deflate) fills nothing: the next touch zero-fills. Refused, with nothing changed: pages
  // outside RAM, pinned pages becoming non-resident, reclaimed pages becoming resident
  // (their contents are in the pool: a fault brings them back, see make_resident), and a
  // non-blockable change a notifier subscriber refuses (ErrorCode::kUnavailable, retry).
  // Returns the pages that changed, counted by the backing they had before.
  Result<PageCounts> set_backing(IpaRange run, stage2::Backing backing, stage2::ChangeReason reason,
                                 bool blockable = true);
  // set_backing() for a balloon buffer's runs (sorted, disjoint, coalesced: the balloon's
  // pfn_runs.h makes them from the guest's PFNs): each run is one change, and fails alone.
  // The lock is taken once for the batch.
  BackingBatch set_backing_runs(std::span<const IpaRange> runs, stage2::Backing backing,
                                stage2::ChangeReason reason, bool blockable = true);
  // Make every non-resident page of `run` resident again (a guest touched it), as one change.
  // Reclaimed pages are accepted: the caller restores their contents. `fill`, when given, is
  // called for each run that changed, after the map says resident and before the lock is
  // released, so no VMM access sees the page before it is filled (a userfaultfd handler does
  // its UFFDIO_COPY / UFFDIO_ZEROPAGE there). Returns the pages that changed, by the backing
  // they had before.
  Result<PageCounts> make_resident(IpaRange run,
                                   stage2::ChangeReason reason = stage2::ChangeReason::kFault,
                                   const Fill& fill = {});

  // FaultResolver: the condition of `ipa`'s page from the map (and, for a resident page,
  // from the memfd: a hole is absent, allocated is present) and the largest run inside
  // `window` around it, contiguous in host offsets, whose pages share it. On success the map
  // lock stays held exclusively until finish(), so the run's state cannot change meanwhile;
  // the caller (the fault handler thread) must not touch guest memory nor call anything that
  // takes the lock in between. Errors (not RAM) release the lock.
  Result<FaultRun> classify(Ipa ipa, IpaRange window) override;
  // FaultResolver: a filled ballooned, reported or reclaimed run becomes resident (reason
  // kFault), and a reclaimed one's store entries are erased; an unfilled one is punched again
  // (a partial fill must not leave pages allocated that the map says are not resident).
  // Releases the lock classify() took.
  void finish(const FaultRun& run, bool filled) override;

  // ReclaimedPages (for the fault handler): load from the attached store (none attached:
  // kFailedPrecondition), report a refault to the attached events, and mark a WP fault's
  // page written in the open reclaim window.
  Result<void> load(Ipa page, std::span<uint8_t, kPageSize> out) override;
  void refaulted(IpaRange run, uint64_t latency_ns) override;
  void write_fault(Ipa page) override;

  // Where reclaimed pages' contents are (`store`) and who hears of refaults and VMM accesses
  // (`events`, may be null). Set once, before any page is reclaimed (the Reclaimer does it);
  // both must outlive every fault and VMM access.
  void attach_reclaim_store(ReclaimStore& store, ReclaimEvents* events);
  // Open the reclaim window over the pages of `runs` (page aligned) that are resident, not
  // pinned and allocated in the memfd, and return them as host-contiguous runs (the others
  // are not candidates). From now on writes to them are recorded (ReclaimWindow). One window
  // at a time: fails when one is open.
  Result<std::vector<WindowRun>> open_reclaim_window(std::span<const IpaRange> runs);
  // Mark the open window's pages in `range` written (no window: nothing).
  void mark_window_written(IpaRange range);
  // Close the window under the map lock held exclusively: of `stored` (pages of the window
  // whose contents the store holds), those not written, not busy and not changed while the
  // window was open become reclaimed (punched, reason kReclaim); the store entries of the
  // others are erased. The caller lifts the protection of every page not reclaimed.
  WindowCommit commit_reclaim_window(std::span<const Ipa> stored);
  // Close the window without reclaiming anything; erase the entries of `stored`.
  void abandon_reclaim_window(std::span<const Ipa> stored);

  // Remove `range` from the guest's RAM: a layout change, fenced. The RAM regions shrink or
  // split, their memslots are recreated, and the backing of what was mapped is released.
  Result<void> unmap_ram(IpaRange range);
  // Whether `ipa` is resident RAM according to the map.
  bool is_ram(Ipa ipa) const;

  // Pages per backing, kept by the changes themselves (cheap; for --stats).
  PageCounts page_counts() const;
  // The same figures from a walk of the whole map (for tests: must equal page_counts()).
  PageCounts count_pages_by_walk() const;
  // The map's coalesced runs in `range` (Stage2Map::mapped_ranges), read under the map lock
  // held shared, so while the vCPUs run (a stage-2 dump).
  std::vector<stage2::MappedRange> mapped_ranges(IpaRange range) const;
  // Bytes of the memfd that are allocated (SEEK_DATA / SEEK_HOLE).
  Result<uint64_t> allocated_bytes() const { return memory_->allocated_bytes(); }

  // Controls from outside (guest_physical_controls.cc, for the Machine's memory controls).
  // Check a control's IPA range: page aligned, not empty, not overflowing, inside the IPA
  // space; the error starts with "range: " and names the range.
  Result<void> check_control_range(IpaRange range) const;
  // Drop the stage-2 TLB entries of this VM's VMID that overlap `range`; the entries dropped.
  uint64_t invalidate_tlb(IpaRange range);
  // Drop every stage-2 TLB entry, of every VMID (a VMID rollover); the entries dropped.
  uint64_t flush_tlb();
  // Make KVM drop its translations of the RAM inside `range`, contents kept: the primary
  // mapping's entries of each RAM part are zapped (GuestMemory::zap_primary), which runs the
  // host's MMU notifiers. Returns the RAM pages covered. The map lock is held only to read
  // the layout, not across the zap: the zap waits for the fault handler to read its REMOVE
  // event, and the handler may be waiting for the lock (guest_physical_controls.cc).
  Result<uint64_t> drop_kvm_translations(IpaRange range);
  // How many pages of `range` the map's leaves mark accessed, and whether the map or a
  // notifier subscriber saw it accessed; with `clear`, their access flags are cleared too
  // (stage2::clear_young, else stage2::test_young), under the map lock. A 2 MiB leaf counts
  // its pages inside the range.
  struct Aging {
    bool young = false;
    uint64_t young_pages = 0;
  };
  Aging age(IpaRange range, bool clear);

  // The notifier registry of the VM's IPA space: devices that cache guest addresses
  // subscribe here (and may refuse non-blockable changes).
  stage2::NotifierRegistry& notifiers() { return notifiers_; }
  const std::vector<RamRegion>& ram() const { return ram_; }
  uint64_t memory_size() const { return memory_->size(); }
  const stage2::Stage2Map& map() const { return *map_; }
  GuestMemory& memory() { return *memory_; }
  const RegionMemslots* memslots() const { return memslots_.get(); }
  const stage2::Stage2Tlb& tlb() const { return tlb_; }
  // What the realization did so far (punches and bytes).
  RealizationStats realization_stats() const;

 private:
  Result<void> map_ram();
  // How change_backing() runs one change.
  struct ChangeOptions {
    stage2::ChangeReason reason;
    bool blockable;
    bool restores_contents;    // the caller restores reclaimed pages it makes resident
    bool marks_window = true;  // false: the caller holds the closed window (its commit)
  };
  Result<PageCounts> change_backing(const std::unique_lock<std::shared_mutex>& guard, IpaRange run,
                                    stage2::Backing backing, const ChangeOptions& options);
  Result<void> realized(Result<void> changed);
  // The run classify() reports for a resident page: the part of `part` (host-contiguous,
  // starting at `output`) that is a hole, or allocated, like `ipa`'s page in the memfd.
  Result<FaultRun> classify_resident(Ipa ipa, IpaRange part, HostOffset output) const;
  // Punch the non-resident pages of `run` out of the memfd again (after a failed fill).
  void release_unfilled(IpaRange run);
  // Under the exclusive lock: erase the store entries of the pages of `run`.
  void erase_entries(const std::unique_lock<std::shared_mutex>& guard, IpaRange run);
  // Run `copy` (a Translator access of [ipa, ipa + size)) as a tracked VMM access; when it
  // fails on reclaimed pages, restore them and run it again.
  template <typename Copy>
  Result<void> vmm_access(Ipa ipa, uint64_t size, bool write, Copy&& copy);
  // Restore the reclaimed pages of `range` from the store (load all of a run, make it
  // resident, write it into the memfd, erase the entries): the pages restored.
  Result<uint64_t> restore_reclaimed(IpaRange range);
  Result<void> restore_run(const std::unique_lock<std::shared_mutex>& guard, IpaRange run,
                           HostOffset output);
  // The window's candidates in `run`: resident, not pinned, allocated in the memfd.
  Result<void> take_candidates(IpaRange run, std::vector<WindowRun>& taken) const;

  std::unique_ptr<GuestMemory> memory_;
  std::vector<RamRegion> ram_;
  uint16_t vmid_;
  stage2::HeapTableAllocator tables_;
  std::optional<stage2::Stage2Map> map_;
  mutable std::shared_mutex lock_;
  // The exclusive hold of lock_ from classify() to finish(), owned by the fault handler
  // thread meanwhile. Moved in only once the lock is acquired and moved out before it is
  // released, so two handler threads never touch it at once.
  std::unique_lock<std::shared_mutex> fault_hold_;
  stage2::Stage2Tlb tlb_;
  stage2::NotifierRegistry notifiers_;
  stage2::NotifierHooks notifier_hooks_{notifiers_};
  stage2::TlbInvalidationHooks tlb_hooks_{tlb_, vmid_};
  std::optional<PageCounter> counter_;
  std::optional<PageRealization> realization_;
  std::optional<stage2::Translator> translator_;
  std::unique_ptr<RegionMemslots> memslots_;
  std::function<void()> pause_;
  std::function<void()> resume_;
  ReclaimWindow window_;
  std::atomic<ReclaimStore*> store_{nullptr};
  std::atomic<ReclaimEvents*> events_{nullptr};
};

}  // namespace hvmm::vmm
