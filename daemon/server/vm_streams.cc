// VmManager: console, notifier and fault streams, and the notifier forwarding they need
// (vm_manager.h).
#include <algorithm>

#include "hvmm/daemon/server/log.h"
#include "hvmm/daemon/server/vm_manager.h"

namespace hvmm::daemon {

namespace {

bool overlaps(const hvmm::v1::IpaRange& a, const hvmm::v1::IpaRange& b) {
  return a.start() < b.start() + b.size() && b.start() < a.start() + a.size();
}

// `ranges` sorted and with overlapping or adjacent ones merged.
std::vector<hvmm::v1::IpaRange> merge_ranges(std::vector<hvmm::v1::IpaRange> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const auto& a, const auto& b) { return a.start() < b.start(); });
  std::vector<hvmm::v1::IpaRange> merged;
  for (const auto& range : ranges) {
    if (!merged.empty() && range.start() <= merged.back().start() + merged.back().size()) {
      uint64_t end =
          std::max(merged.back().start() + merged.back().size(), range.start() + range.size());
      merged.back().set_size(end - merged.back().start());
    } else {
      merged.push_back(range);
    }
  }
  return merged;
}

bool same_ranges(const std::vector<hvmm::v1::IpaRange>& a,
                 const std::vector<hvmm::v1::IpaRange>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.start() == y.start() && x.size() == y.size();
  });
}

}  // namespace

grpc::Status VmManager::watch_console(const std::string& name, bool history, bool follow,
                                      const std::shared_ptr<ConsoleStream>& stream, uint64_t* id) {
  VmRecord* vm = nullptr;
  grpc::Status status = lookup(name, &vm);
  if (!status.ok()) {
    return status;
  }
  if (history) {
    for (const ConsoleEntry& entry : vm->console.lines()) {
      hvmm::v1::ConsoleLine line;
      line.set_time_unix_ns(entry.time_unix_ns);
      line.set_line(entry.line);
      stream->push(std::move(line));
    }
  }
  // Live lines flow until the VM ends; a VM that is not running at the call ends the stream
  // after its history, unless the client follows it (then it waits for the next run).
  bool live = vm->process != nullptr && !vm->process->end;
  if ((!live && !follow) || shutting_down_) {
    stream->finish(grpc::Status::OK);
    *id = 0;
    return grpc::Status::OK;
  }
  *id = next_watcher_id_++;
  vm->console_watchers.push_back({*id, stream});
  return grpc::Status::OK;
}

void VmManager::unwatch_console(const std::string& name, uint64_t id) {
  if (VmRecord* vm = find(name)) {
    std::erase_if(vm->console_watchers, [id](const ConsoleWatcher& w) { return w.id == id; });
  }
}

grpc::Status VmManager::watch_notifier(const std::string& name,
                                       const hvmm::v1::WatchNotifierRequest& request,
                                       const std::shared_ptr<NotifierStream>& stream,
                                       uint64_t* id) {
  VmRecord* vm = nullptr;
  grpc::Status status = lookup(name, &vm);
  if (status.ok() && vm->state != hvmm::v1::VM_STATE_RUNNING) {
    status =
        grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                     "VM '" + name + "' is " + state_name(vm->state) + " (it must be RUNNING)");
  }
  if (!status.ok()) {
    return status;
  }
  NotifierWatcher watcher;
  watcher.id = *id = next_watcher_id_++;
  if (request.has_filter() && request.filter().size() != 0) {
    watcher.filter = request.filter();
  }
  watcher.stream = stream;
  vm->notifier_watchers.push_back(std::move(watcher));
  update_forwarding(*vm);
  return grpc::Status::OK;
}

void VmManager::unwatch_notifier(const std::string& name, uint64_t id) {
  VmRecord* vm = find(name);
  if (vm == nullptr) {
    return;
  }
  size_t before = vm->notifier_watchers.size();
  std::erase_if(vm->notifier_watchers, [id](const NotifierWatcher& w) { return w.id == id; });
  if (vm->notifier_watchers.size() != before) {
    update_forwarding(*vm);
  }
}

void VmManager::update_forwarding(VmRecord& vm) {
  if (vm.state != hvmm::v1::VM_STATE_RUNNING || !vm.process) {
    return;
  }
  bool all = false;
  std::vector<hvmm::v1::IpaRange> filters;
  for (const NotifierWatcher& watcher : vm.notifier_watchers) {
    if (!watcher.filter) {
      all = true;
    } else {
      filters.push_back(*watcher.filter);
    }
  }
  if (all) {
    filters.clear();
  }
  filters = merge_ranges(std::move(filters));
  bool on = all || !filters.empty();
  if (on == vm.forwarding && all == vm.forwarding_all &&
      same_ranges(filters, vm.forwarded_filters)) {
    return;
  }
  vm.forwarding = on;
  vm.forwarding_all = all;
  vm.forwarded_filters = filters;
  supervisor::Request request;
  auto* forward = request.mutable_forward_notifier_events();
  forward->set_all(all);
  for (const auto& range : filters) {
    *forward->add_filters() = range;
  }
  std::string name = vm.name;
  vm.process->channel->request(std::move(request),
                               std::chrono::steady_clock::now() + std::chrono::seconds(30),
                               [name](const grpc::Status& status, supervisor::Response*) {
                                 if (!status.ok()) {
                                   log::warn("notifier forwarding not changed",
                                             {{"vm", name}, {"error", status.error_message()}});
                                 }
                               });
}

void VmManager::fan_out_notifier(VmRecord& vm, const hvmm::v1::NotifierEvent& event) {
  bool changed = false;
  for (auto it = vm.notifier_watchers.begin(); it != vm.notifier_watchers.end();) {
    PushResult pushed = PushResult::kQueued;
    if (!it->filter || overlaps(*it->filter, event.range())) {
      pushed = it->stream->push(event);
    }
    if (pushed == PushResult::kOverflowed) {
      ++vm.watch_clients_dropped;
      log::warn("notifier watcher dropped: it fell behind",
                {{"vm", vm.name}, {"watcher", it->id}, {"buffer", it->stream->capacity()}});
    }
    if (pushed == PushResult::kOverflowed || pushed == PushResult::kClosed) {
      it = vm.notifier_watchers.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed) {
    update_forwarding(vm);
  }
}

grpc::Status VmManager::watch_faults(const hvmm::v1::WatchFaultsRequest& request,
                                     const std::shared_ptr<FaultStream>& stream, uint64_t* id) {
  if (!request.name().empty()) {
    VmRecord* vm = nullptr;
    grpc::Status status = lookup(request.name(), &vm);
    if (!status.ok()) {
      return status;
    }
  }
  if (shutting_down_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down");
  }
  FaultWatcher watcher{next_watcher_id_++, request.name(), {}, stream};
  for (int kind : request.kinds()) {
    watcher.kinds.insert(kind);
  }
  *id = watcher.id;
  fault_watchers_.push_back(std::move(watcher));
  return grpc::Status::OK;
}

void VmManager::unwatch_faults(uint64_t id) {
  std::erase_if(fault_watchers_, [id](const FaultWatcher& w) { return w.id == id; });
}

void VmManager::fan_out_fault(VmRecord& vm, hvmm::v1::Fault fault) {
  // The record names the VM the daemon knows, whatever the VM process wrote.
  fault.set_vm(vm.name);
  fault.set_vmid(vm.vmid);
  fault.set_dropped_before(0);
  if (fault_file_ != nullptr) {
    fault_file_->record(fault);
  }
  for (auto it = fault_watchers_.begin(); it != fault_watchers_.end();) {
    bool wanted = (it->vm.empty() || it->vm == vm.name) &&
                  (it->kinds.empty() || it->kinds.count(fault.kind()) != 0);
    if (wanted && it->stream->push(fault) == PushResult::kClosed) {
      it = fault_watchers_.erase(it);
    } else {
      ++it;
    }
  }
}

void VmManager::end_streams(VmRecord& vm) {
  for (ConsoleWatcher& watcher : vm.console_watchers) {
    watcher.stream->finish(grpc::Status::OK);
  }
  vm.console_watchers.clear();
  for (NotifierWatcher& watcher : vm.notifier_watchers) {
    watcher.stream->finish(grpc::Status::OK);
  }
  vm.notifier_watchers.clear();
  for (auto it = fault_watchers_.begin(); it != fault_watchers_.end();) {
    if (it->vm == vm.name) {
      it->stream->finish(grpc::Status::OK);
      it = fault_watchers_.erase(it);
    } else {
      ++it;
    }
  }
}

void VmManager::list_subscriptions(
    const std::string& name, Deadline deadline,
    std::function<void(const grpc::Status&, const hvmm::v1::ListSubscriptionsResponse*)> done) {
  supervisor::Request request;
  request.mutable_list_subscriptions()->set_name(name);
  forward(
      name, nullptr, std::move(request), deadline,
      [this, name, done](const grpc::Status& status, supervisor::Response* response) {
        if (!status.ok()) {
          done(status, nullptr);
          return;
        }
        hvmm::v1::ListSubscriptionsResponse out;
        out.Swap(response->mutable_list_subscriptions());
        VmRecord* vm = find(name);
        if (vm != nullptr) {
          // One "watch" entry per client; ids above 2^32 keep them apart from the VM's.
          for (const NotifierWatcher& watcher : vm->notifier_watchers) {
            auto* entry = out.add_subscriptions();
            entry->set_id((uint64_t{1} << 32) + watcher.id);
            entry->set_owner("watch");
            if (watcher.filter) {
              *entry->mutable_interval() = *watcher.filter;
            } else {
              entry->mutable_interval()->set_size(UINT64_MAX);
            }
            entry->set_events_sent(watcher.stream->sent());
            entry->set_overflows(watcher.stream->overflows());
          }
          out.set_watch_clients_dropped(out.watch_clients_dropped() + vm->watch_clients_dropped);
        }
        done(grpc::Status::OK, &out);
      });
}

}  // namespace hvmm::daemon
