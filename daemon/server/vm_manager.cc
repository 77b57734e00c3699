// VmManager: lifecycle requests and lookups (vm_manager.h). Supervision of the processes is
// in vm_supervision.cc, streams in vm_streams.cc.
#include "hvmm/daemon/server/vm_manager.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "hvmm/daemon/server/log.h"
#include "hvmm/daemon/server/spec_check.h"
#include "hvmm/daemon/spec/vm_spec.h"

namespace hvmm::daemon {

namespace asio = boost::asio;
using hvmm::v1::VmState;

uint64_t unix_now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string state_name(VmState state) {
  std::string name = hvmm::v1::VmState_Name(state);
  const std::string prefix = "VM_STATE_";
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

namespace {

grpc::Status wrong_state(const VmRecord& vm, const char* wanted) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "VM '" + vm.name + "' is " + state_name(vm.state) + " (" + wanted + ")");
}

bool has_process_state(VmState state) {
  return state == hvmm::v1::VM_STATE_STARTING || state == hvmm::v1::VM_STATE_RUNNING ||
         state == hvmm::v1::VM_STATE_STOPPING;
}

// The directory of one VM's files.
std::string vm_dir(const std::string& state_dir, const std::string& name) {
  return state_dir + "/vms/" + name;
}

}  // namespace

Result<std::unique_ptr<VmManager>> VmManager::create(asio::io_context& io, Options options,
                                                     FaultFile* fault_file) {
  std::error_code error;
  std::filesystem::create_directories(options.state_dir + "/vms", error);
  if (error) {
    return make_error(ErrorCode::kInvalidArgument, "state-dir: cannot create '{}/vms': {}",
                      options.state_dir, error.message());
  }
  std::unique_ptr<VmManager> manager(new VmManager(io, std::move(options), fault_file));
  stage2::VmidAllocatorOptions vmid_options;
  vmid_options.vmid_bits = manager->options_.vmid_bits;
  vmid_options.running_slots = stage2::VmidAllocator::kMaxRunningSlots;
  VmManager* self = manager.get();
  auto vmids =
      stage2::VmidAllocator::create(vmid_options, [self] { self->flush_all_stage2_tlbs(); });
  if (!vmids) {
    return make_error(ErrorCode::kInvalidArgument, "vmid-bits: {}", vmids.error().message);
  }
  manager->vmids_ = std::move(*vmids);
  manager->slots_.assign(vmid_options.running_slots, false);
  if (!manager->options_.warm_pools.empty()) {
    manager->warm_pool_ = std::make_unique<WarmPool>(
        io, WarmPool::Options{manager->options_.vm_process, manager->options_.warm_pools,
                              manager->options_.start_timeout});
    asio::post(io, [pool = manager->warm_pool_.get()] { pool->start(); });
  }
  return manager;
}

VmManager::VmManager(asio::io_context& io, Options options, FaultFile* fault_file)
    : io_(io),
      options_(std::move(options)),
      fault_file_(fault_file),
      started_unix_ns_(unix_now_ns()) {}

VmManager::~VmManager() {
  // The loop has stopped: close what is left without completing anything on it.
  for (auto& [name, vm] : vms_) {
    if (vm->process && vm->process->channel) {
      vm->process->channel->close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "daemon exiting"));
    }
  }
}

VmRecord* VmManager::find(const std::string& name) {
  auto it = vms_.find(name);
  return it == vms_.end() ? nullptr : it->second.get();
}

grpc::Status VmManager::lookup(const std::string& name, VmRecord** vm) {
  *vm = find(name);
  if (*vm == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "name: no VM named " + quote_for_message(name));
  }
  return grpc::Status::OK;
}

hvmm::v1::Vm VmManager::describe(const VmRecord& vm) const {
  hvmm::v1::Vm out;
  out.set_name(vm.name);
  out.set_state(vm.state);
  *out.mutable_spec() = vm.spec;
  out.set_created_unix_ns(vm.created_unix_ns);
  out.set_started_unix_ns(vm.started_unix_ns);
  out.set_warm_start(vm.warm_start);
  out.set_start_requested_unix_ns(vm.start_requested_unix_ns);
  out.set_first_run_unix_ns(vm.first_run_unix_ns);
  if (vm.slot) {
    out.set_vmid(vm.vmid);
    out.set_vmid_generation(vm.vmid_generation);
  }
  if (vm.process && !vm.process->end) {
    out.set_pid(vm.process->pid);
  }
  if (vm.exit) {
    *out.mutable_exit() = *vm.exit;
  }
  return out;
}

grpc::Status VmManager::add(const std::string& name, const hvmm::v1::VmSpec& spec,
                            hvmm::v1::Vm* out) {
  if (shutting_down_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down");
  }
  if (find(name) != nullptr) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        "name: a VM named '" + name + "' exists already");
  }
  auto vm = std::make_unique<VmRecord>();
  vm->name = name;
  vm->spec = spec;
  vm->facts = vm_facts(name, spec);
  vm->created_unix_ns = unix_now_ns();
  *out = describe(*vm);
  vms_.emplace(name, std::move(vm));
  log::info("vm created", {{"vm", name}});
  return grpc::Status::OK;
}

grpc::Status VmManager::lease_vmid(VmRecord& vm) {
  unsigned slot = 0;
  while (slot < slots_.size() && slots_[slot]) {
    ++slot;
  }
  if (slot == slots_.size()) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "name: " + std::to_string(slots_.size()) + " VMs run already");
  }
  auto vmid = vmids_->activate(vm.vmid_state, slot);
  if (!vmid) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "name: no VMID for VM '" + vm.name + "': " + vmid.error().message);
  }
  slots_[slot] = true;
  vm.slot = slot;
  vm.vmid = *vmid;
  vm.vmid_generation = vmids_->generation_of(vm.vmid_state.raw());
  return grpc::Status::OK;
}

void VmManager::release_vmid(VmRecord& vm) {
  if (!vm.slot) {
    return;
  }
  vmids_->deactivate(*vm.slot);
  slots_[*vm.slot] = false;
  vm.slot.reset();
}

void VmManager::flush_all_stage2_tlbs() {
  // Called by the allocator during a rollover, under its lock, on the loop's thread (Start
  // is the only caller of activate): queue the flushes, wait for nothing.
  uint64_t generation = vmids_ ? vmids_->generation() : 0;
  log::info("vmid rollover: flushing every VM's stage-2 TLB",
            {{"generation", generation}, {"vm_processes", running_processes()}});
  for (auto& [name, vm] : vms_) {
    if (!vm->slot || !vm->process || !vm->process->channel) {
      continue;
    }
    supervisor::Request request;
    request.mutable_flush_stage2_tlb()->set_generation(generation);
    ++flushes_sent_;
    std::string vm_name = name;
    vm->process->channel->request(
        std::move(request), std::chrono::steady_clock::now() + std::chrono::seconds(30),
        [vm_name](const grpc::Status& status, supervisor::Response*) {
          if (!status.ok()) {
            log::warn("stage-2 TLB flush failed",
                      {{"vm", vm_name}, {"error", status.error_message()}});
          }
        });
  }
}

size_t VmManager::running_processes() const {
  size_t count = 0;
  for (const auto& [name, vm] : vms_) {
    count += vm->slot ? 1 : 0;
  }
  return count;
}

void VmManager::start(const std::string& name, bool wait, VmDone done, uint64_t requested_unix_ns) {
  VmRecord* vm = nullptr;
  grpc::Status status = lookup(name, &vm);
  if (status.ok() && shutting_down_) {
    status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down");
  }
  if (status.ok() && has_process_state(vm->state)) {
    status = wrong_state(*vm, "only a CREATED, STOPPED or FAILED VM can be started");
  }
  if (status.ok()) {
    vm->start_requested_unix_ns = requested_unix_ns != 0 ? requested_unix_ns : unix_now_ns();
    status = launch(*vm);
  }
  if (!status.ok()) {
    done(status, nullptr);
    return;
  }
  if (wait) {
    vm->start_waiters.push_back(std::move(done));
    return;
  }
  hvmm::v1::Vm out = describe(*vm);
  done(grpc::Status::OK, &out);
}

void VmManager::stop(const std::string& name, std::chrono::milliseconds grace, bool force,
                     VmDone done) {
  VmRecord* vm = nullptr;
  grpc::Status status = lookup(name, &vm);
  if (status.ok() && !has_process_state(vm->state)) {
    status = wrong_state(*vm, "only a STARTING, RUNNING or STOPPING VM can be stopped");
  }
  if (!status.ok()) {
    done(status, nullptr);
    return;
  }
  vm->end_waiters.push_back(std::move(done));
  RunningProcess& process = *vm->process;
  if (force) {
    vm->stop_requested = true;
    vm->state = hvmm::v1::VM_STATE_STOPPING;
    kill(*vm, "stopped with force");
    return;
  }
  if (vm->stop_requested) {
    return;  // a stop is under way: wait for it
  }
  vm->stop_requested = true;
  vm->state = hvmm::v1::VM_STATE_STOPPING;
  log::info("vm stopping", {{"vm", vm->name}, {"grace_ms", grace.count()}});
  supervisor::Request request;
  request.mutable_shutdown()->set_exit_status(0);
  std::string vm_name = vm->name;
  process.channel->request(std::move(request), std::chrono::steady_clock::now() + grace,
                           [vm_name](const grpc::Status& reply, supervisor::Response*) {
                             if (!reply.ok()) {
                               log::info("vm shutdown request not served",
                                         {{"vm", vm_name}, {"error", reply.error_message()}});
                             }
                           });
  uint64_t run_id = process.run_id;
  process.kill_timer.expires_after(grace);
  process.kill_timer.async_wait([this, vm_name, run_id, grace](const boost::system::error_code& e) {
    if (e) {
      return;
    }
    VmRecord* target = find(vm_name);
    if (target != nullptr && target->process && target->process->run_id == run_id) {
      kill(*target, "did not stop within the " + std::to_string(grace.count()) + " ms grace");
    }
  });
}

void VmManager::remove(const std::string& name, bool force,
                       std::function<void(const grpc::Status&)> done) {
  VmRecord* vm = nullptr;
  grpc::Status status = lookup(name, &vm);
  if (!status.ok()) {
    done(status);
    return;
  }
  if (!has_process_state(vm->state)) {
    erase(name);
    done(grpc::Status::OK);
    return;
  }
  if (!force) {
    done(wrong_state(*vm, "stop it first, or delete with force"));
    return;
  }
  vm->delete_requested = true;
  vm->stop_requested = true;
  vm->state = hvmm::v1::VM_STATE_STOPPING;
  vm->end_waiters.push_back(
      [done](const grpc::Status&, const hvmm::v1::Vm*) { done(grpc::Status::OK); });
  kill(*vm, "deleted with force");
}

void VmManager::erase(const std::string& name) {
  VmRecord* vm = find(name);
  if (vm == nullptr) {
    return;
  }
  end_streams(*vm);
  std::error_code ignored;
  std::filesystem::remove_all(vm_dir(options_.state_dir, name), ignored);
  vms_.erase(name);
  log::info("vm deleted", {{"vm", name}});
}

void VmManager::forward(const std::string& name, const RequestCheck& check,
                        supervisor::Request request, Deadline deadline, ResponseHandler done) {
  VmRecord* vm = nullptr;
  grpc::Status status = lookup(name, &vm);
  if (status.ok() && check) {
    auto checked = check(vm->facts);
    if (!checked) {
      status = grpc::Status(static_cast<grpc::StatusCode>(rpc_code(checked.error().code)),
                            checked.error().message);
    }
  }
  if (status.ok() && vm->state != hvmm::v1::VM_STATE_RUNNING) {
    status = wrong_state(*vm, "it must be RUNNING");
  }
  if (!status.ok()) {
    done(status, nullptr);
    return;
  }
  vm->process->channel->request(std::move(request), deadline, std::move(done));
}

namespace {

// Collects the memory figures of several VMs, then completes.
struct ListGather {
  std::vector<hvmm::v1::Vm> vms;
  size_t outstanding = 0;
  std::function<void(std::vector<hvmm::v1::Vm>)> done;
  void finish_one() {
    if (--outstanding == 0) {
      done(std::move(vms));
    }
  }
};

void fill_summary(const hvmm::v1::MemoryStats& stats, hvmm::v1::MemorySummary* summary) {
  summary->set_memory_bytes(stats.memory_bytes());
  summary->set_host_rss_bytes(stats.host().rss_bytes());
  summary->set_resident_bytes(stats.pages().resident() * kPageSize);
  summary->set_balloon_target_bytes(stats.balloon().target_bytes());
  summary->set_balloon_actual_bytes(stats.balloon().actual_bytes());
}

}  // namespace

std::vector<VmManager::RunningVm> VmManager::running_vms() const {
  std::vector<RunningVm> running;
  for (const auto& [name, vm] : vms_) {
    if (vm->state == hvmm::v1::VM_STATE_RUNNING) {
      running.push_back({name, vm->spec});
    }
  }
  return running;
}

void VmManager::list(std::function<void(std::vector<hvmm::v1::Vm>)> done) {
  auto gather = std::make_shared<ListGather>();
  gather->done = std::move(done);
  gather->outstanding = 1;  // this function's own share, released at the end
  Deadline deadline = std::chrono::steady_clock::now() + options_.list_deadline;
  for (auto& [name, vm] : vms_) {
    size_t index = gather->vms.size();
    gather->vms.push_back(describe(*vm));
    if (vm->state != hvmm::v1::VM_STATE_RUNNING) {
      continue;
    }
    supervisor::Request request;
    request.mutable_get_memory_stats()->set_name(name);
    ++gather->outstanding;
    vm->process->channel->request(
        std::move(request), deadline,
        [gather, index](const grpc::Status& status, supervisor::Response* response) {
          // A VM that does not answer in time is listed without figures.
          if (status.ok() && response->has_get_memory_stats()) {
            fill_summary(response->get_memory_stats().stats(), gather->vms[index].mutable_memory());
          }
          gather->finish_one();
        });
  }
  gather->finish_one();
}

void VmManager::get(const std::string& name, VmDone done) {
  VmRecord* vm = nullptr;
  grpc::Status status = lookup(name, &vm);
  if (!status.ok()) {
    done(status, nullptr);
    return;
  }
  auto out = std::make_shared<hvmm::v1::Vm>(describe(*vm));
  if (vm->state != hvmm::v1::VM_STATE_RUNNING) {
    done(grpc::Status::OK, out.get());
    return;
  }
  supervisor::Request request;
  request.mutable_get_memory_stats()->set_name(name);
  vm->process->channel->request(
      std::move(request), std::chrono::steady_clock::now() + options_.list_deadline,
      [out, done](const grpc::Status& answer, supervisor::Response* response) {
        if (answer.ok() && response->has_get_memory_stats()) {
          fill_summary(response->get_memory_stats().stats(), out->mutable_memory());
        }
        done(grpc::Status::OK, out.get());
      });
}

hvmm::v1::GetDaemonInfoResponse VmManager::info() const {
  hvmm::v1::GetDaemonInfoResponse out;
  out.set_version(HVMM_VERSION);
  out.set_pid(::getpid());
  out.set_started_unix_ns(started_unix_ns_);
  out.set_vmid_bits(vmids_->vmid_bits());
  out.set_vmid_generation(vmids_->generation());
  out.set_vmid_rollovers(vmids_->rollovers());
  out.set_vms(static_cast<uint32_t>(vms_.size()));
  uint32_t running = 0;
  for (const auto& [name, vm] : vms_) {
    running += vm->state == hvmm::v1::VM_STATE_RUNNING ? 1 : 0;
  }
  out.set_running_vms(running);
  if (warm_pool_) {
    for (hvmm::v1::WarmPoolStatus& pool : warm_pool_->status()) {
      *out.add_warm_pools() = std::move(pool);
    }
  }
  return out;
}

void VmManager::shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  if (warm_pool_) {
    warm_pool_->shutdown();  // no VM's: killed and reaped now
  }
  std::vector<std::string> names;
  for (auto& [name, vm] : vms_) {
    if (has_process_state(vm->state)) {
      names.push_back(name);
    }
  }
  log::info("stopping every VM", {{"vms", names.size()}, {"grace_ms", grace.count()}});
  for (const std::string& name : names) {
    stop(name, grace, false, [](const grpc::Status&, const hvmm::v1::Vm*) {});
  }
  for (auto& [name, vm] : vms_) {
    end_streams(*vm);
  }
  for (FaultWatcher& watcher : fault_watchers_) {
    watcher.stream->finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down"));
  }
  fault_watchers_.clear();
  if (running_processes() == 0) {
    auto callback = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    asio::post(io_, callback);
  }
}

}  // namespace hvmm::daemon
