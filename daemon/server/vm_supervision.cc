// VmManager: VM processes from spawn to reaping (vm_manager.h).
//
// A run ends when the process has been reaped AND its output has reached end of file (so the
// last console lines are in the report), or kDrainGrace after the reaping if something else
// still holds the pipe. Only then is the exit recorded, the VMID slot released and the waiters
// completed, in that order.
#include <signal.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>

#include "hvmm/daemon/server/log.h"
#include "hvmm/daemon/server/vm_manager.h"

namespace hvmm::daemon {

namespace asio = boost::asio;

namespace {

constexpr auto kDrainGrace = std::chrono::milliseconds(500);

}  // namespace

grpc::Status VmManager::launch(VmRecord& vm) {
  std::string dir = options_.state_dir + "/vms/" + vm.name;
  std::error_code dir_error;
  std::filesystem::create_directories(dir, dir_error);
  if (dir_error) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "state-dir: cannot create '" + dir + "': " + dir_error.message());
  }
  grpc::Status leased = lease_vmid(vm);
  if (!leased.ok()) {
    return leased;
  }
  auto process = std::make_unique<RunningProcess>(io_, next_run_id_++);
  uint64_t run_id = process->run_id;
  std::string name = vm.name;
  VmChannel::Callbacks callbacks{
      [this, name, run_id](const supervisor::Event& event) { on_event(name, run_id, event); },
      [this, name, run_id](const std::string& reason, bool protocol_error) {
        on_channel_closed(name, run_id, reason, protocol_error);
      }};
  boost::system::error_code error;
  std::optional<WarmProcess> warm = warm_pool_ ? warm_pool_->take(vm.spec) : std::nullopt;
  if (warm) {
    // Prepared already: its channel reads, its VM waits for this Launch.
    process->pid = warm->pid;
    process->pidfd.assign(::dup(warm->pidfd.get()), error);
    process->output.assign(::dup(warm->output.get()), error);
    process->channel = std::move(warm->channel);
    process->channel->rebind(vm.name, std::move(callbacks));
  } else {
    auto spawned = spawn_vm_process(options_.vm_process);
    if (!spawned) {
      release_vmid(vm);
      log::error("vm process not started", {{"vm", vm.name}, {"error", spawned.error().message}});
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, spawned.error().message);
    }
    process->pid = spawned->pid;
    process->pidfd.assign(::dup(spawned->pidfd.get()), error);
    process->output.assign(::dup(spawned->output.get()), error);
    process->channel = std::make_shared<VmChannel>(io_, std::move(spawned->channel), vm.name,
                                                   std::move(callbacks));
    process->channel->start();
  }
  vm.warm_start = warm.has_value();
  vm.first_run_unix_ns = 0;
  vm.process = std::move(process);
  vm.state = hvmm::v1::VM_STATE_STARTING;
  vm.exit.reset();
  vm.stop_requested = false;
  vm.started_unix_ns = 0;
  vm.console.clear();
  vm.forwarded_filters.clear();
  vm.forwarding = false;
  vm.forwarding_all = false;

  supervisor::Launch launch_message;
  launch_message.set_name(vm.name);
  launch_message.set_vmid(vm.vmid);
  launch_message.set_vmid_generation(vm.vmid_generation);
  *launch_message.mutable_spec() = vm.spec;
  launch_message.set_console_log(dir + "/console.log");
  launch_message.set_fault_log(dir + "/faults.jsonl");
  launch_message.set_seccomp(options_.vm_seccomp);
  vm.process->channel->send_launch(launch_message);
  watch_process(vm);
  read_output(vm);
  watch_start(vm);
  log::info("vm process started", {{"vm", vm.name},
                                   {"pid", vm.process->pid},
                                   {"warm", vm.warm_start ? "yes" : "no"},
                                   {"vmid", vm.vmid},
                                   {"vmid_generation", vm.vmid_generation}});
  return grpc::Status::OK;
}

void VmManager::watch_start(VmRecord& vm) {
  // The kill timer doubles as the start timeout: Stop re-arms it with its grace.
  std::string name = vm.name;
  uint64_t run_id = vm.process->run_id;
  auto timeout = options_.start_timeout;
  vm.process->kill_timer.expires_after(timeout);
  vm.process->kill_timer.async_wait(
      [this, name, run_id, timeout](const boost::system::error_code& e) {
        VmRecord* target = find(name);
        if (!e && target != nullptr && target->process && target->process->run_id == run_id &&
            !target->process->started) {
          kill(*target, "did not build its VM within " + std::to_string(timeout.count()) + " ms");
        }
      });
}

void VmManager::watch_process(VmRecord& vm) {
  std::string name = vm.name;
  uint64_t run_id = vm.process->run_id;
  vm.process->pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                               [this, name, run_id](const boost::system::error_code& error) {
                                 if (!error) {
                                   on_process_exit(name, run_id);
                                 }
                               });
}

void VmManager::read_output(VmRecord& vm) {
  std::string name = vm.name;
  RunningProcess& process = *vm.process;
  uint64_t run_id = process.run_id;
  auto buffer = process.output_buffer;
  process.output.async_read_some(asio::buffer(*buffer), [this, name, run_id, buffer](
                                                            const boost::system::error_code& error,
                                                            size_t bytes) {
    if (error == asio::error::operation_aborted) {
      return;
    }
    VmRecord* target = find(name);
    if (target == nullptr || !target->process || target->process->run_id != run_id) {
      return;
    }
    RunningProcess& running = *target->process;
    if (error) {
      running.splitter.finish([&](std::string line) { on_output_line(*target, std::move(line)); });
      running.output_done = true;
      maybe_finalize(*target);
      return;
    }
    running.splitter.feed(std::string_view(buffer->data(), bytes),
                          [&](std::string line) { on_output_line(*target, std::move(line)); });
    read_output(*target);
  });
}

void VmManager::on_output_line(VmRecord& vm, std::string line) {
  ConsoleEntry entry{unix_now_ns(), std::move(line)};
  hvmm::v1::ConsoleLine message;
  message.set_time_unix_ns(entry.time_unix_ns);
  message.set_line(entry.line);
  vm.console.add(std::move(entry));
  for (auto it = vm.console_watchers.begin(); it != vm.console_watchers.end();) {
    if (it->stream->push(message) == PushResult::kClosed) {
      it = vm.console_watchers.erase(it);
    } else {
      ++it;
    }
  }
}

void VmManager::on_event(const std::string& name, uint64_t run_id, const supervisor::Event& event) {
  VmRecord* vm = find(name);
  if (vm == nullptr || !vm->process || vm->process->run_id != run_id) {
    return;
  }
  switch (event.body_case()) {
    case supervisor::Event::kStarted:
      on_started(*vm, event.started());
      return;
    case supervisor::Event::kFailed:
      vm->process->failed = event.failed();
      log::warn(
          "vm failed to start",
          {{"vm", name}, {"code", event.failed().code()}, {"error", event.failed().message()}});
      return;
    case supervisor::Event::kExiting:
      vm->process->exiting = event.exiting();
      if (vm->state == hvmm::v1::VM_STATE_RUNNING) {
        vm->state = hvmm::v1::VM_STATE_STOPPING;
      }
      return;
    case supervisor::Event::kNotifier:
      fan_out_notifier(*vm, event.notifier());
      return;
    case supervisor::Event::kFault:
      fan_out_fault(*vm, event.fault());
      return;
    case supervisor::Event::kFirstRun:
      if (vm->first_run_unix_ns == 0) {
        vm->first_run_unix_ns = event.first_run().unix_ns();
        if (vm->warm_start && warm_pool_) {
          warm_pool_->resume_refill();
        }
        const uint64_t asked = vm->start_requested_unix_ns;
        log::info("vm first run",
                  {{"vm", name},
                   {"warm", vm->warm_start ? "yes" : "no"},
                   {"start_to_first_run_us",
                    vm->first_run_unix_ns > asked ? (vm->first_run_unix_ns - asked) / 1000 : 0}});
      }
      return;
    case supervisor::Event::kDropped:
      vm->notifier_events_lost += event.dropped().notifier_events();
      vm->faults_lost += event.dropped().faults();
      log::warn("vm process dropped events",
                {{"vm", name},
                 {"notifier_events", event.dropped().notifier_events()},
                 {"faults", event.dropped().faults()}});
      return;
    default:
      return;
  }
}

void VmManager::on_started(VmRecord& vm, const supervisor::Started& started) {
  RunningProcess& process = *vm.process;
  if (process.started || vm.state != hvmm::v1::VM_STATE_STARTING) {
    return;  // a second Started, or one after Stop: nothing changes
  }
  process.started = true;
  process.kill_timer.cancel();  // the start timeout
  vm.state = hvmm::v1::VM_STATE_RUNNING;
  vm.started_unix_ns = unix_now_ns();
  log::info("vm running", {{"vm", vm.name}, {"pid", started.pid()}, {"vmid", vm.vmid}});
  update_forwarding(vm);
  hvmm::v1::Vm out = describe(vm);
  auto waiters = std::move(vm.start_waiters);
  vm.start_waiters.clear();
  for (VmDone& waiter : waiters) {
    waiter(grpc::Status::OK, &out);
  }
}

void VmManager::on_channel_closed(const std::string& name, uint64_t run_id,
                                  const std::string& reason, bool protocol_error) {
  VmRecord* vm = find(name);
  if (vm == nullptr || !vm->process || vm->process->run_id != run_id) {
    return;
  }
  // The VM process exits when its channel ends; one that broke the protocol is not waited for.
  if (protocol_error) {
    log::error("vm process broke the channel protocol", {{"vm", name}, {"error", reason}});
    kill(*vm, "broke the channel protocol: " + reason);
  } else {
    log::debug("vm channel ended", {{"vm", name}, {"reason", reason}});
  }
}

void VmManager::kill(VmRecord& vm, const std::string& reason) {
  RunningProcess& process = *vm.process;
  if (process.end || process.killed) {
    return;
  }
  process.killed = true;
  process.kill_reason = reason;
  if (vm.state == hvmm::v1::VM_STATE_RUNNING) {
    vm.state = hvmm::v1::VM_STATE_STOPPING;
  }
  log::warn("killing vm process", {{"vm", vm.name}, {"pid", process.pid}, {"reason", reason}});
  auto sent = signal_vm_process(process.pidfd.native_handle(), SIGKILL);
  if (!sent) {
    log::error("cannot kill vm process", {{"vm", vm.name}, {"error", sent.error().message}});
  }
}

void VmManager::on_process_exit(const std::string& name, uint64_t run_id) {
  VmRecord* vm = find(name);
  if (vm == nullptr || !vm->process || vm->process->run_id != run_id) {
    return;
  }
  RunningProcess& process = *vm->process;
  auto end = reap_vm_process(process.pid);
  if (!end) {
    watch_process(*vm);  // readable but not yet reapable: look again
    return;
  }
  process.end = end;
  process.kill_timer.cancel();
  process.drain_timer.expires_after(kDrainGrace);
  process.drain_timer.async_wait([this, name, run_id](const boost::system::error_code& error) {
    VmRecord* target = find(name);
    if (!error && target != nullptr && target->process && target->process->run_id == run_id) {
      target->process->output_done = true;
      maybe_finalize(*target);
    }
  });
  maybe_finalize(*vm);
}

void VmManager::maybe_finalize(VmRecord& vm) {
  if (vm.process && vm.process->end && vm.process->output_done) {
    finalize(vm);
  }
}

hvmm::v1::VmExit VmManager::make_exit(const VmRecord& vm) const {
  const RunningProcess& process = *vm.process;
  hvmm::v1::VmExit exit;
  exit.set_time_unix_ns(unix_now_ns());
  std::string how;
  if (process.end->signal) {
    exit.set_signal(*process.end->signal);
    how = "killed by signal " + describe_signal(*process.end->signal);
  } else {
    exit.set_status(process.end->status.value_or(-1));
    how = "exited with status " + std::to_string(exit.status());
  }
  if (process.failed) {
    exit.set_reason(process.failed->message() + " (the VM process " + how + ")");
  } else if (process.killed) {
    exit.set_reason("the VM process " + how + ": " + process.kill_reason);
  } else if (process.exiting) {
    exit.set_reason(process.exiting->reason());
  } else {
    exit.set_reason("the VM process " + how + " without reporting why");
  }
  for (std::string& line : vm.console.last(kExitConsoleLines)) {
    exit.add_last_console_lines(std::move(line));
  }
  return exit;
}

void VmManager::finalize(VmRecord& vm) {
  RunningProcess& process = *vm.process;
  hvmm::v1::VmExit exit = make_exit(vm);
  // Stopped on request, or ended by the guest: STOPPED. Never built, or died: FAILED.
  bool ended_cleanly =
      !process.failed && (vm.stop_requested || (process.started && process.exiting.has_value()));
  vm.state = ended_cleanly ? hvmm::v1::VM_STATE_STOPPED : hvmm::v1::VM_STATE_FAILED;
  vm.exit = exit;
  process.channel->close(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "VM '" + vm.name + "' ended: " + exit.reason()));
  process.drain_timer.cancel();
  release_vmid(vm);
  if (exit.has_signal()) {
    log::warn("vm ended", {{"vm", vm.name},
                           {"state", state_name(vm.state)},
                           {"signal", exit.signal()},
                           {"reason", exit.reason()}});
  } else {
    log::info("vm ended", {{"vm", vm.name},
                           {"state", state_name(vm.state)},
                           {"status", exit.status()},
                           {"reason", exit.reason()}});
  }
  end_streams(vm);
  vm.process.reset();
  complete_waiters(vm);
  if (shutting_down_ && running_processes() == 0 && shutdown_done_) {
    auto callback = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    asio::post(io_, callback);
  }
}

void VmManager::complete_waiters(VmRecord& vm) {
  hvmm::v1::Vm out = describe(vm);
  auto waiters = std::move(vm.start_waiters);
  vm.start_waiters.clear();
  auto end_waiters = std::move(vm.end_waiters);
  vm.end_waiters.clear();
  bool erase_now = vm.delete_requested;
  std::string name = vm.name;
  if (erase_now) {
    erase(name);  // `vm` is gone from here on
  }
  for (VmDone& waiter : waiters) {
    waiter(grpc::Status::OK, &out);
  }
  for (VmDone& waiter : end_waiters) {
    waiter(grpc::Status::OK, &out);
  }
}

}  // namespace hvmm::daemon
