// A C++ client of the daemon for its integration tests: stubs of every hvmm.v1 service over a
// DaemonHarness's socket, and the calls the tests repeat.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "daemon_harness.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::testing {

namespace v1 = hvmm::v1;

// The harness options of a daemon that runs hvmm-fake-vm as its VM process.
inline DaemonHarness::Options fake_daemon_options(unsigned vmid_bits = 8) {
  DaemonHarness::Options options;
  // HVMM_TEST_HVMMD runs another build's hvmmd (a sanitizer build) under these tests.
  const char* other = std::getenv("HVMM_TEST_HVMMD");
  options.hvmmd = other != nullptr && *other != '\0' ? other : HVMMD_BINARY;
  options.vm_process = HVMM_FAKE_VM_BINARY;
  options.vmid_bits = vmid_bits;
  return options;
}

struct DaemonClient {
  explicit DaemonClient(std::shared_ptr<grpc::Channel> channel_in)
      : channel(std::move(channel_in)),
        vms(v1::VmService::NewStub(channel)),
        memory(v1::MemoryService::NewStub(channel)),
        tlb(v1::TlbService::NewStub(channel)),
        notifier(v1::NotifierService::NewStub(channel)),
        faults(v1::FaultService::NewStub(channel)),
        guest(v1::GuestService::NewStub(channel)),
        daemon(v1::DaemonService::NewStub(channel)),
        policy(v1::HostPolicyService::NewStub(channel)) {}

  // A context with a deadline, so that no test hangs on a call.
  static std::unique_ptr<grpc::ClientContext> context(
      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + timeout);
    return context;
  }

  grpc::Status create(const std::string& name, const v1::VmSpec& spec, bool start,
                      v1::Vm* vm = nullptr) {
    v1::CreateVmRequest request;
    request.set_name(name);
    *request.mutable_spec() = spec;
    request.set_start(start);
    v1::CreateVmResponse response;
    grpc::Status status = vms->Create(context().get(), request, &response);
    if (vm != nullptr) {
      *vm = response.vm();
    }
    return status;
  }

  // Create and start a VM of the fake with `cmdline` (its knobs), and wait until it runs.
  v1::Vm run(const std::string& name, const std::string& cmdline = "",
             uint64_t memory_bytes = uint64_t{64} << 20) {
    v1::VmSpec spec;
    spec.set_cmdline(cmdline);
    spec.set_memory_bytes(memory_bytes);
    grpc::Status created = create(name, spec, false);
    EXPECT_TRUE(created.ok()) << created.error_message();
    v1::StartVmRequest request;
    request.set_name(name);
    request.set_wait(true);
    v1::StartVmResponse response;
    grpc::Status started = vms->Start(context().get(), request, &response);
    EXPECT_TRUE(started.ok()) << started.error_message();
    EXPECT_EQ(response.vm().state(), v1::VM_STATE_RUNNING) << response.vm().DebugString();
    return response.vm();
  }

  v1::Vm get(const std::string& name) {
    v1::GetVmRequest request;
    request.set_name(name);
    v1::GetVmResponse response;
    grpc::Status status = vms->Get(context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.vm();
  }

  // Wait until Get says `state` (false after `timeout`).
  bool wait_for_state(const std::string& name, v1::VmState state,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (get(name).state() == state) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  grpc::Status stop(const std::string& name, uint32_t grace_ms = 0, bool force = false,
                    v1::Vm* vm = nullptr) {
    v1::StopVmRequest request;
    request.set_name(name);
    request.set_grace_ms(grace_ms);
    request.set_force(force);
    v1::StopVmResponse response;
    grpc::Status status = vms->Stop(context().get(), request, &response);
    if (vm != nullptr) {
      *vm = response.vm();
    }
    return status;
  }

  grpc::Status remove(const std::string& name, bool force = false) {
    v1::DeleteVmRequest request;
    request.set_name(name);
    request.set_force(force);
    v1::DeleteVmResponse response;
    return vms->Delete(context().get(), request, &response);
  }

  grpc::Status list(v1::ListVmsResponse* response) {
    return vms->List(context().get(), v1::ListVmsRequest(), response);
  }

  grpc::Status stats(const std::string& name, v1::MemoryStats* out,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    v1::GetMemoryStatsRequest request;
    request.set_name(name);
    v1::GetMemoryStatsResponse response;
    grpc::Status status = memory->GetMemoryStats(context(timeout).get(), request, &response);
    if (out != nullptr) {
      *out = response.stats();
    }
    return status;
  }

  // The VM's console history (the stream of a running VM goes on: it is cut after `wait`).
  std::vector<std::string> console(
      const std::string& name, std::chrono::milliseconds wait = std::chrono::milliseconds(500)) {
    v1::StreamConsoleRequest request;
    request.set_name(name);
    request.set_history(true);
    auto call_context = context(std::chrono::seconds(10));
    auto reader = vms->StreamConsole(call_context.get(), request);
    std::thread cutter([&call_context, wait] {
      std::this_thread::sleep_for(wait);
      call_context->TryCancel();
    });
    std::vector<std::string> lines;
    v1::ConsoleLine line;
    while (reader->Read(&line)) {
      lines.push_back(line.line());
    }
    reader->Finish();
    cutter.join();
    return lines;
  }

  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::VmService::Stub> vms;
  std::unique_ptr<v1::MemoryService::Stub> memory;
  std::unique_ptr<v1::TlbService::Stub> tlb;
  std::unique_ptr<v1::NotifierService::Stub> notifier;
  std::unique_ptr<v1::FaultService::Stub> faults;
  std::unique_ptr<v1::GuestService::Stub> guest;
  std::unique_ptr<v1::DaemonService::Stub> daemon;
  std::unique_ptr<v1::HostPolicyService::Stub> policy;
};

// True when some line of `lines` contains `text`.
inline bool any_line_has(const std::vector<std::string>& lines, const std::string& text) {
  for (const std::string& line : lines) {
    if (line.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace hvmm::testing
