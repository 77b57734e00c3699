// FaultHandler: the threads that read userfaultfd messages and resolve them.
#include "hvmm/vmm/fault/fault_handler.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "hvmm/vmm/host/service_thread.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::vmm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMessagesPerRead = 32;

// Nanoseconds on the steady clock, 0 reserved for "idle".
int64_t steady_ns(Clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

// The fault kind a page condition is logged as (reported pages count as missing).
FaultKind kind_of(PageCondition condition) {
  switch (condition) {
    case PageCondition::kBallooned:
      return FaultKind::kBallooned;
    case PageCondition::kReclaimed:
      return FaultKind::kReclaimed;
    case PageCondition::kAbsent:
    case PageCondition::kReported:
    case PageCondition::kPresent:
      break;
  }
  return FaultKind::kMissing;
}

// The part of `window` inside `region`.
IpaRange clip(IpaRange window, const FaultRegion& region) {
  const Ipa start = std::max(window.start, region.ipa);
  const Ipa end = std::min(window.end(), region.ipa + region.size);
  return IpaRange{start, end - start};
}

// True when `run` is what classify() promised: page aligned, inside `window`, holding `ipa`.
bool run_is_sane(const IpaRange& run, const IpaRange& window, Ipa ipa) {
  return run.start.is_aligned(kPageSize) && is_aligned(run.size, kPageSize) && run.size > 0 &&
         run.start >= window.start && run.end() <= window.end() && run.contains(ipa);
}

}  // namespace

// What one handler thread publishes for the watchdog.
struct ProgressSlot {
  std::atomic<uint64_t> ipa{0};
  std::atomic<int64_t> since_ns{0};  // 0: not resolving anything
};

// Everything the threads use; shared so a thread left behind by stop() keeps it alive.
struct FaultHandler::State {
  State(Userfaultfd uffd_in, ZeroFiller filler_in, std::vector<RefaultFiller> refaulters_in,
        FaultResolver& resolver_in, FaultHandlerConfig config_in, UniqueFd stop_fd_in)
      : uffd(std::move(uffd_in)),
        filler(std::move(filler_in)),
        refaulters(std::move(refaulters_in)),
        resolver(resolver_in),
        config(std::move(config_in)),
        stop_fd(std::move(stop_fd_in)),
        slots(config.threads),
        exited(config.threads, false) {}

  void run(unsigned slot);
  void handle(const uffd_msg& message, Clock::time_point seen, unsigned slot);
  void handle_pagefault(const uffd_msg& message, Clock::time_point seen, unsigned slot);
  void handle_write_protect(uint8_t* page, FaultRecord& record, Clock::time_point seen);
  void resolve_missing(const FaultRegion& region, uint8_t* page, pid_t tid, FaultRecord& record,
                       Clock::time_point seen, unsigned slot);
  void restore_reclaimed(const FaultRegion& region, FaultRun run, pid_t tid, FaultRecord& record,
                         Clock::time_point seen, unsigned slot);
  const FaultRegion* find_region(const uint8_t* address) const;
  pid_t stream_of(pid_t tid) const;
  IpaRange window_for(pid_t tid, Ipa ipa);
  void resolved(pid_t tid, IpaRange run);
  void fail(FaultRecord& record, FaultKind kind, const std::string& why, Clock::time_point seen);
  void stop_vm(const std::string& why);
  void finish_record(FaultRecord& record, FaultKind kind, FaultResolution resolution,
                     Clock::time_point seen);

  Userfaultfd uffd;
  ZeroFiller filler;
  std::vector<RefaultFiller> refaulters;  // one bounce buffer per thread
  FaultResolver& resolver;
  FaultHandlerConfig config;
  UniqueFd stop_fd;
  FaultCounters counters;
  std::vector<ProgressSlot> slots;
  std::atomic<uint64_t> heartbeat{0};
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> failed{false};  // the stop callback ran

  std::mutex windows_lock;
  std::unordered_map<pid_t, FaultWindow> windows;

  std::mutex exit_lock;
  std::condition_variable exit_changed;
  std::vector<bool> exited;  // per thread, under exit_lock
  std::vector<std::thread> threads;
};

// Poll the userfaultfd and the stop eventfd; handle messages in batches until stopped.
void FaultHandler::State::run(unsigned slot) {
  std::array<uffd_msg, kMessagesPerRead> messages{};
  while (!stop_requested.load(std::memory_order_acquire)) {
    std::array<pollfd, 2> fds = {{{uffd.fd(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}}};
    const int ready = ::poll(fds.data(), fds.size(), -1);
    heartbeat.fetch_add(1, std::memory_order_relaxed);
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready < 0 || (fds[1].revents & POLLIN) != 0) {
      break;
    }
    if ((fds[0].revents & (POLLERR | POLLHUP)) != 0) {
      stop_vm("userfaultfd poll reported an error");
      break;
    }
    auto count = uffd.read_messages(messages);
    if (!count) {
      stop_vm(count.error().message);
      break;
    }
    const Clock::time_point seen = Clock::now();
    for (size_t i = 0; i < *count; ++i) {
      handle(messages[i], seen, slot);
      heartbeat.fetch_add(1, std::memory_order_relaxed);
    }
  }
  std::lock_guard guard(exit_lock);
  exited[slot] = true;
  exit_changed.notify_all();
}

// Page faults are resolved; REMOVE events are counted and noted; nothing else is requested.
void FaultHandler::State::handle(const uffd_msg& message, Clock::time_point seen, unsigned slot) {
  if (message.event == UFFD_EVENT_PAGEFAULT) {
    handle_pagefault(message, seen, slot);
    return;
  }
  if (message.event == UFFD_EVENT_REMOVE) {
    const auto& remove = message.arg.remove;
    counters.add_remove(remove.end - remove.start);
    if (config.log != nullptr) {
      config.log->note(fmt::format(
          "{{\"vm\":\"{}\",\"vmid\":{},\"event\":\"userfaultfd-remove\",\"start\":\"{:#x}\","
          "\"end\":\"{:#x}\"}}",
          config.vm, config.vmid, static_cast<uint64_t>(remove.start),
          static_cast<uint64_t>(remove.end)));
    }
    return;
  }
  counters.add_other_event();
}

// Attribute the fault, then resolve it as a WP or a MISSING fault.
void FaultHandler::State::handle_pagefault(const uffd_msg& message, Clock::time_point seen,
                                           unsigned slot) {
  const auto& fault = message.arg.pagefault;
  auto* page = reinterpret_cast<uint8_t*>(fault.address & ~(kPageSize - 1));
  const pid_t tid = static_cast<pid_t>(fault.feat.ptid);
  FaultRecord record;
  record.vm = config.vm;
  record.vmid = config.vmid;
  record.write = (fault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
  record.size = kPageSize;
  record.vcpu = config.vcpus != nullptr ? config.vcpus->find(tid) : std::nullopt;
  if (!record.vcpu) {
    counters.add_unattributed();
  }
  const FaultRegion* region = find_region(page);
  if (region == nullptr) {
    fail(record, FaultKind::kMissing,
         fmt::format("userfaultfd fault at host address {:#x}, outside guest RAM",
                     static_cast<uint64_t>(fault.address)),
         seen);
    return;
  }
  record.ipa = region->ipa + static_cast<uint64_t>(page - region->host);
  if ((fault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0) {
    handle_write_protect(page, record, seen);
    return;
  }
  ProgressSlot& progress = slots[slot];
  progress.ipa.store(record.ipa.value(), std::memory_order_relaxed);
  progress.since_ns.store(steady_ns(seen), std::memory_order_release);
  resolve_missing(*region, page, tid, record, seen, slot);
  progress.since_ns.store(0, std::memory_order_release);
}

// Tell the reclaim side first (an open window must drop the page before the write can go
// on), then lift the protection of the page (waking the writer) and count it.
void FaultHandler::State::handle_write_protect(uint8_t* page, FaultRecord& record,
                                               Clock::time_point seen) {
  if (config.reclaimed != nullptr) {
    config.reclaimed->write_fault(record.ipa.align_down(kPageSize));
  }
  auto lifted = uffd.unprotect(page, kPageSize);
  if (!lifted) {
    fail(record, FaultKind::kWriteProtect, lifted.error().message, seen);
    return;
  }
  finish_record(record, FaultKind::kWriteProtect, FaultResolution::kUnprotected, seen);
}

// Window, classify, fill, report, wake; a reclaimed run is restored; an error fails the fault.
void FaultHandler::State::resolve_missing(const FaultRegion& region, uint8_t* page, pid_t tid,
                                          FaultRecord& record, Clock::time_point seen,
                                          unsigned slot) {
  const IpaRange window = clip(window_for(tid, record.ipa), region);
  auto classified = resolver.classify(record.ipa, window);
  if (!classified) {
    fail(record, FaultKind::kMissing, classified.error().message, seen);
    return;
  }
  FaultRun run = *classified;
  if (!run_is_sane(run.range, window, record.ipa)) {
    run.range = IpaRange{record.ipa, kPageSize};  // the faulting page is always safe to fill
  }
  const FaultKind kind = kind_of(run.condition);
  if (run.condition == PageCondition::kReclaimed) {
    restore_reclaimed(region, run, tid, record, seen, slot);
    return;
  }
  uint8_t* host = region.host + (run.range.start - region.ipa);
  const HostOffset offset = region.offset + (run.range.start - region.ipa);
  if (run.condition == PageCondition::kPresent) {
    auto woken = uffd.wake(page, kPageSize);
    resolver.finish(run, true);
    resolved(tid, run.range);
    record.size = static_cast<unsigned>(run.range.size);
    finish_record(record, kind, woken ? FaultResolution::kWoken : FaultResolution::kFailed, seen);
    return;
  }
  auto filled = filler.fill(uffd, host, offset, run.range.size);
  resolver.finish(run, filled.ok());
  if (!filled) {
    fail(record, kind, filled.error().message, seen);
    return;
  }
  counters.add_filled(filled->pages_filled);
  counters.add_existing(filled->pages_existing);
  resolved(tid, run.range);
  record.size = static_cast<unsigned>(run.range.size);
  finish_record(record, kind, FaultResolution::kZeroFill, seen);
}

// Clip the run to the reclaimed cluster, load and copy it, record it resident (finish), then
// let the reclaim side drop the saved contents and count the refault. The latency reported
// ends at the copy, which wakes the faulting thread.
void FaultHandler::State::restore_reclaimed(const FaultRegion& region, FaultRun run, pid_t tid,
                                            FaultRecord& record, Clock::time_point seen,
                                            unsigned slot) {
  if (config.reclaimed == nullptr) {
    resolver.finish(run, false);
    fail(record, FaultKind::kReclaimed,
         fmt::format("refault of reclaimed page at IPA {:#x}: no reclaim store is attached",
                     record.ipa.value()),
         seen);
    return;
  }
  run.range = reclaimed_cluster(run.range, record.ipa, config.reclaimed_cluster);
  uint8_t* host = region.host + (run.range.start - region.ipa);
  auto filled = refaulters[slot].fill(uffd, *config.reclaimed, run.range, host);
  const auto woken = Clock::now();
  resolver.finish(run, filled.ok());
  if (!filled) {
    fail(record, FaultKind::kReclaimed,
         fmt::format("refault at IPA {:#x}: {}", record.ipa.value(), filled.error().message), seen);
    return;
  }
  const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(woken - seen);
  config.reclaimed->refaulted(run.range, static_cast<uint64_t>(latency.count()));
  counters.add_filled(filled->pages_filled);
  counters.add_existing(filled->pages_existing);
  resolved(tid, run.range);
  record.size = static_cast<unsigned>(run.range.size);
  finish_record(record, FaultKind::kReclaimed, FaultResolution::kRestored, seen);
}

// The registered region holding `address`, or nullptr.
const FaultRegion* FaultHandler::State::find_region(const uint8_t* address) const {
  for (const FaultRegion& region : config.regions) {
    if (address >= region.host && address < region.host + region.size) {
      return &region;
    }
  }
  return nullptr;
}

// The stream a faulting thread belongs to: a vCPU thread is its own; every other thread
// shares stream 0. Most guest faults reach userfaultfd from KVM's async page-fault workers
// (kernel threads faulting on behalf of a vCPU, even for a guest without async PF), one
// worker per fault: keyed by thread, no window would ever see two faults of a stream.
pid_t FaultHandler::State::stream_of(pid_t tid) const {
  if (config.vcpus != nullptr && config.vcpus->find(tid))
    return tid;
  return 0;
}

// The stream's next window (a new stream starts at one page).
IpaRange FaultHandler::State::window_for(pid_t tid, Ipa ipa) {
  std::lock_guard guard(windows_lock);
  auto [it, inserted] =
      windows.try_emplace(stream_of(tid), config.max_window, config.adaptive_window);
  return it->second.window_for(ipa);
}

// Tell the stream's window what was resolved.
void FaultHandler::State::resolved(pid_t tid, IpaRange run) {
  std::lock_guard guard(windows_lock);
  auto it = windows.find(stream_of(tid));
  if (it != windows.end()) {
    it->second.resolved(run);
  }
}

// Count and log the failed fault, then stop the VM.
void FaultHandler::State::fail(FaultRecord& record, FaultKind kind, const std::string& why,
                               Clock::time_point seen) {
  finish_record(record, kind, FaultResolution::kFailed, seen);
  stop_vm(why);
}

// Call the stop callback, once per handler: the VM cannot go on (internal-error).
void FaultHandler::State::stop_vm(const std::string& why) {
  if (!failed.exchange(true) && config.stop) {
    config.stop(kExitInternalError, fmt::format("fault handler: {}", why));
  }
}

// Count the fault with its latency and give it to the log.
void FaultHandler::State::finish_record(FaultRecord& record, FaultKind kind,
                                        FaultResolution resolution, Clock::time_point seen) {
  const auto latency = Clock::now() - seen;
  record.latency_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count());
  record.set_outcome(kind, resolution);
  counters.fault(kind, resolution, record.latency_ns);
  if (config.log != nullptr) {
    record.time = std::chrono::system_clock::now();
    config.log->record(record);
  }
}

// Open, register, make the filler and the stop eventfd, start the threads.
Result<std::unique_ptr<FaultHandler>> FaultHandler::create(FaultResolver& resolver,
                                                           FaultHandlerConfig config) {
  if (config.threads == 0) {
    config.threads = 1;
  }
  auto uffd = Userfaultfd::open();
  HVMM_TRY(uffd);
  for (const FaultRegion& region : config.regions) {
    HVMM_TRY(uffd->register_range(region.host, region.size, config.register_write_protect));
  }
  const uint64_t max_run = FaultWindow(config.max_window).max();
  auto filler = ZeroFiller::create(config.fill, config.memfd, max_run);
  HVMM_TRY(filler);
  std::vector<RefaultFiller> refaulters;
  for (unsigned slot = 0; slot < config.threads; ++slot) {
    auto refaulter = RefaultFiller::create(reclaimed_cluster_size(config.reclaimed_cluster));
    HVMM_TRY(refaulter);
    refaulters.push_back(std::move(*refaulter));
  }
  UniqueFd stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd.valid()) {
    return make_error(ErrorCode::kResourceExhausted, "fault handler: eventfd failed: {}",
                      std::strerror(errno));
  }
  auto state = std::make_shared<State>(std::move(*uffd), std::move(*filler), std::move(refaulters),
                                       resolver, std::move(config), std::move(stop_fd));
  for (unsigned slot = 0; slot < state->config.threads; ++slot) {
    state->threads.push_back(start_service_thread([state, slot] { state->run(slot); }));
  }
  return std::unique_ptr<FaultHandler>(new FaultHandler(std::move(state)));
}

// Stop (a thread left behind was already reported by stop()).
FaultHandler::~FaultHandler() {
  if (!state_->threads.empty()) {
    auto stopped = stop();
    if (!stopped) {
      fmt::print(stderr, "hvmm: {}\n", stopped.error().message);
    }
  }
}

// Signal the eventfd, wait for the threads up to `grace`, join those that ended.
Result<void> FaultHandler::stop(std::chrono::milliseconds grace) {
  state_->stop_requested.store(true, std::memory_order_release);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(state_->stop_fd.get(), &one, sizeof(one));
  std::vector<bool> exited;
  {
    std::unique_lock guard(state_->exit_lock);
    state_->exit_changed.wait_for(guard, grace, [&] {
      for (bool done : state_->exited) {
        if (!done)
          return false;
      }
      return true;
    });
    exited = state_->exited;
  }
  unsigned left = 0;
  for (size_t i = 0; i < state_->threads.size(); ++i) {
    if (exited[i]) {
      state_->threads[i].join();
    } else {
      state_->threads[i].detach();
      ++left;
    }
  }
  state_->threads.clear();
  if (left > 0) {
    const FaultHandlerHealth now = health();
    return make_error(ErrorCode::kInternal,
                      "fault handler: {} thread(s) did not stop within {} ms{}; left behind", left,
                      grace.count(),
                      now.resolving ? fmt::format(" (resolving IPA {:#x})", now.resolving->value())
                                    : std::string());
  }
  return Ok();
}

// A snapshot of the counters.
FaultCounts FaultHandler::counts() const {
  return state_->counters.snapshot();
}

// The oldest fault in progress, the heartbeat, and whether messages wait (a poll that
// consumes nothing: the userfaultfd is non-blocking, as its poll requires).
FaultHandlerHealth FaultHandler::health() const {
  FaultHandlerHealth health;
  int64_t oldest = 0;
  for (const ProgressSlot& slot : state_->slots) {
    const int64_t since = slot.since_ns.load(std::memory_order_acquire);
    if (since != 0 && (oldest == 0 || since < oldest)) {
      oldest = since;
      health.resolving = Ipa(slot.ipa.load(std::memory_order_relaxed));
    }
  }
  health.since = Clock::time_point(std::chrono::nanoseconds(oldest));
  health.heartbeat = state_->heartbeat.load(std::memory_order_relaxed);
  pollfd fd{state_->uffd.fd(), POLLIN, 0};
  health.pending = ::poll(&fd, 1, 0) > 0 && (fd.revents & POLLIN) != 0;
  return health;
}

// The handler's userfaultfd.
Userfaultfd& FaultHandler::uffd() {
  return state_->uffd;
}

}  // namespace hvmm::vmm
