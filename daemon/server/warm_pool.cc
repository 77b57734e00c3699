// The warm pool: spawning, preparing, replacing and handing over VM processes (warm_pool.h).
#include "hvmm/daemon/server/warm_pool.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <fstream>
#include <sstream>

#include "hvmm/daemon/server/log.h"
#include "hvmm/daemon/server/vm_process.h"
#include "hvmm/daemon/spec/vm_spec.h"

namespace hvmm::daemon {

namespace asio = boost::asio;

namespace {

// Back-off after a pool process failed: 100 ms doubling up to 30 s while they keep failing.
constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(30000);
// How long a take holds the refill back when the VM it served does not report its first run.
constexpr auto kRefillHoldBack = std::chrono::milliseconds(5000);

std::chrono::milliseconds backoff(unsigned failures) {
  auto delay = kFirstBackoff * (1u << std::min(failures, 9u));
  return std::min<std::chrono::milliseconds>(delay, kMaxBackoff);
}

std::string pool_name(const WarmPoolSize& size) {
  return fmt::format("warm-pool/{}M/{}", size.memory_bytes >> 20, size.vcpus);
}

}  // namespace

uint64_t process_rss_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      uint64_t kib = 0;
      fields >> kib;
      return kib << 10;
    }
  }
  return 0;
}

WarmPool::WarmPool(asio::io_context& io, Options options)
    : io_(io),
      options_(std::move(options)),
      counts_(options_.sizes.size()),
      refill_timer_(io),
      hold_back_timer_(io) {}

WarmPool::~WarmPool() {
  shutdown();
}

void WarmPool::start() {
  for (const WarmPoolSize& size : options_.sizes) {
    log::info("warm pool",
              {{"memory_bytes", size.memory_bytes}, {"vcpus", size.vcpus}, {"target", size.count}});
  }
  refill();
}

WarmPool::Entry* WarmPool::find(uint64_t id) {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.get();
}

unsigned WarmPool::count(size_t size, bool ready) const {
  unsigned n = 0;
  for (const auto& [id, entry] : entries_) {
    if (entry->size == size && !entry->dying && entry->ready == ready) {
      ++n;
    }
  }
  return n;
}

// The first size short of its target gets the next process.
void WarmPool::resume_refill() {
  if (holding_back_) {
    holding_back_ = false;
    hold_back_timer_.cancel();
    refill();
  }
}

void WarmPool::refill() {
  if (stopped_ || building_ || holding_back_) {
    return;
  }
  for (size_t size = 0; size < options_.sizes.size(); ++size) {
    if (count(size, true) < options_.sizes[size].count) {
      spawn(size);
      return;
    }
  }
}

void WarmPool::schedule_refill(std::chrono::milliseconds delay) {
  if (stopped_) {
    return;
  }
  refill_timer_.expires_after(delay);
  refill_timer_.async_wait([this](const boost::system::error_code& error) {
    if (!error) {
      refill();
    }
  });
}

void WarmPool::spawn(size_t size) {
  const WarmPoolSize& shape = options_.sizes[size];
  auto spawned = spawn_vm_process(options_.vm_process);
  if (!spawned) {
    log::error("warm pool: vm process not started",
               {{"pool", pool_name(shape)}, {"error", spawned.error().message}});
    schedule_refill(backoff(failures_in_a_row_++));
    return;
  }
  const uint64_t id = next_id_++;
  auto entry = std::make_unique<Entry>(io_, id, size);
  entry->pid = spawned->pid;
  boost::system::error_code error;
  entry->pidfd.assign(::dup(spawned->pidfd.get()), error);
  entry->output.assign(::dup(spawned->output.get()), error);
  entry->channel = std::make_shared<VmChannel>(
      io_, std::move(spawned->channel), pool_name(shape),
      VmChannel::Callbacks{[this, id](const supervisor::Event& event) { on_event(id, event); },
                           [this, id](const std::string& reason, bool protocol_error) {
                             if (Entry* target = find(id); target != nullptr && protocol_error) {
                               discard(*target, "broke the channel protocol: " + reason);
                             }
                           }});
  Entry& added = *entry;
  entries_.emplace(id, std::move(entry));
  building_ = true;
  supervisor::Prepare prepare;
  prepare.set_memory_bytes(shape.memory_bytes);
  prepare.set_vcpus(shape.vcpus);
  added.channel->start();
  added.channel->send_prepare(prepare);
  watch_exit(added);
  read_output(added);
  added.timer.expires_after(options_.prepare_timeout);
  added.timer.async_wait([this, id](const boost::system::error_code& e) {
    Entry* target = find(id);
    if (!e && target != nullptr && !target->ready) {
      discard(*target,
              fmt::format("did not prepare within {} ms", options_.prepare_timeout.count()));
    }
  });
  log::debug("warm pool: vm process started", {{"pool", pool_name(shape)}, {"pid", added.pid}});
}

void WarmPool::watch_exit(Entry& entry) {
  const uint64_t id = entry.id;
  entry.pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                         [this, id](const boost::system::error_code& error) {
                           if (!error) {
                             on_exit(id);
                           }
                         });
}

// A pool process prints nothing while it waits; what it does print (a failure's end line)
// goes to the daemon's log.
void WarmPool::read_output(Entry& entry) {
  const uint64_t id = entry.id;
  auto buffer = entry.buffer;
  entry.output.async_read_some(
      asio::buffer(*buffer), [this, id, buffer](const boost::system::error_code& error, size_t n) {
        Entry* target = find(id);
        if (error || target == nullptr) {
          return;
        }
        std::string text(buffer->data(), n);
        while (!text.empty() && text.back() == '\n') {
          text.pop_back();
        }
        log::info("warm pool: vm process output", {{"pid", target->pid}, {"output", text}});
        read_output(*target);
      });
}

void WarmPool::on_event(uint64_t id, const supervisor::Event& event) {
  Entry* entry = find(id);
  if (entry == nullptr || entry->dying) {
    return;
  }
  const WarmPoolSize& shape = options_.sizes[entry->size];
  if (event.has_prepared() && !entry->ready) {
    entry->ready = true;
    entry->timer.cancel();
    building_ = false;
    failures_in_a_row_ = 0;
    log::info("warm pool: vm process ready", {{"pool", pool_name(shape)},
                                              {"pid", entry->pid},
                                              {"ready", count(entry->size, true)},
                                              {"target", shape.count}});
    refill();
    return;
  }
  if (event.has_failed()) {
    discard(*entry, "could not prepare: " + event.failed().message());
    return;
  }
  discard(*entry, "sent an event before its Launch");
}

// Killed, failed or died on its own: reaped here, then replaced.
void WarmPool::on_exit(uint64_t id) {
  Entry* entry = find(id);
  if (entry == nullptr) {
    return;
  }
  auto end = reap_vm_process(entry->pid);
  if (!end) {
    watch_exit(*entry);
    return;
  }
  const bool was_building = !entry->ready;
  if (!entry->dying) {
    const std::string how = end->signal ? "killed by signal " + describe_signal(*end->signal)
                                        : "exited with status " + std::to_string(*end->status);
    log::warn(
        "warm pool: vm process died; replacing it",
        {{"pool", pool_name(options_.sizes[entry->size])}, {"pid", entry->pid}, {"how", how}});
  }
  entry->channel->close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "warm pool process ended"));
  entries_.erase(id);
  if (was_building) {
    building_ = false;
    schedule_refill(backoff(failures_in_a_row_++));
  } else {
    refill();
  }
}

void WarmPool::discard(Entry& entry, const std::string& why) {
  if (entry.dying) {
    return;
  }
  log::warn("warm pool: discarding a vm process",
            {{"pool", pool_name(options_.sizes[entry.size])}, {"pid", entry.pid}, {"why", why}});
  entry.dying = true;
  entry.timer.cancel();
  if (auto sent = signal_vm_process(entry.pidfd.native_handle(), SIGKILL); !sent) {
    log::error("warm pool: cannot kill", {{"pid", entry.pid}, {"error", sent.error().message}});
  }
}

std::optional<WarmProcess> WarmPool::take(const hvmm::v1::VmSpec& spec) {
  auto options = options_from_spec("warm", spec);
  if (!options || stopped_) {
    return std::nullopt;
  }
  const bool eligible = !options->dirty_tracking && !options->reclaim_policy;
  for (size_t size = 0; size < options_.sizes.size(); ++size) {
    const WarmPoolSize& shape = options_.sizes[size];
    if (shape.memory_bytes != options->memory_bytes || shape.vcpus != options->vcpus) {
      continue;
    }
    for (auto& [id, entry] : entries_) {
      if (!eligible || entry->size != size || !entry->ready || entry->dying) {
        continue;
      }
      WarmProcess process;
      process.pid = entry->pid;
      process.pidfd = vmm::UniqueFd(entry->pidfd.release());  // cancels the pool's waits
      process.output = vmm::UniqueFd(entry->output.release());
      process.channel = std::move(entry->channel);
      entry->timer.cancel();
      const uint64_t taken_id = id;  // not a reference into the node being erased
      entries_.erase(taken_id);
      ++counts_[size].taken;
      // Refilling now would compete for the CPU with the launch just served: it waits for
      // that VM's first run (resume_refill), or kRefillHoldBack at most.
      holding_back_ = true;
      hold_back_timer_.expires_after(kRefillHoldBack);
      hold_back_timer_.async_wait([this](const boost::system::error_code& error) {
        if (!error) {
          resume_refill();
        }
      });
      return process;
    }
    ++counts_[size].missed;
    return std::nullopt;
  }
  return std::nullopt;
}

void WarmPool::shutdown() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  refill_timer_.cancel();
  hold_back_timer_.cancel();
  for (auto& [id, entry] : entries_) {
    if (auto sent = signal_vm_process(entry->pidfd.native_handle(), SIGKILL); !sent) {
      log::error("warm pool: cannot kill", {{"pid", entry->pid}, {"error", sent.error().message}});
    }
  }
  for (auto& [id, entry] : entries_) {
    ::waitpid(entry->pid, nullptr, 0);
    entry->timer.cancel();
    entry->channel->close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is stopping"));
  }
  if (!entries_.empty()) {
    log::info("warm pool: stopped", {{"killed", entries_.size()}});
  }
  entries_.clear();
}

std::vector<hvmm::v1::WarmPoolStatus> WarmPool::status() const {
  std::vector<hvmm::v1::WarmPoolStatus> out;
  for (size_t size = 0; size < options_.sizes.size(); ++size) {
    hvmm::v1::WarmPoolStatus pool;
    pool.set_memory_bytes(options_.sizes[size].memory_bytes);
    pool.set_vcpus(options_.sizes[size].vcpus);
    pool.set_target(options_.sizes[size].count);
    pool.set_ready(count(size, true));
    pool.set_building(count(size, false));
    uint64_t rss = 0;
    for (const auto& [id, entry] : entries_) {
      if (entry->size == size && entry->ready && !entry->dying) {
        rss += process_rss_bytes(entry->pid);
      }
    }
    pool.set_rss_bytes(rss);
    pool.set_taken(counts_[size].taken);
    pool.set_missed(counts_[size].missed);
    out.push_back(std::move(pool));
  }
  return out;
}

uint64_t WarmPool::rss_bytes() const {
  uint64_t rss = 0;
  for (const auto& [id, entry] : entries_) {
    if (entry->ready && !entry->dying) {
      rss += process_rss_bytes(entry->pid);
    }
  }
  return rss;
}

}  // namespace hvmm::daemon
