// Guest-kernel VMs under the daemon (guest_vms.h).
#include "guest_vms.h"

#include <thread>

namespace hvmm::e2e {

Error status_error(const std::string& what, const grpc::Status& status) {
  return make_error(ErrorCode::kInternal, "{}: {}", what, describe(status));
}

v1::VmSpec guest_spec(uint64_t memory_bytes) {
  v1::VmSpec spec;
  spec.set_memory_bytes(memory_bytes);
  spec.set_vcpus(1);
  spec.set_control_channel(true);
  return spec;
}

Result<v1::Vm> start_guest_vm(Api& api, const std::string& name, const v1::VmSpec& spec) {
  v1::CreateVmRequest create;
  create.set_name(name);
  *create.mutable_spec() = spec;
  auto created = call(*api.vm, &v1::VmService::Stub::Create, create);
  if (!created.ok()) {
    return status_error("Create " + name, created.status);
  }
  v1::StartVmRequest start;
  start.set_name(name);
  start.set_wait(true);
  auto started = call(*api.vm, &v1::VmService::Stub::Start, start, kBootTimeout);
  if (!started.ok()) {
    return status_error("Start " + name, started.status);
  }
  if (started.response.vm().state() != v1::VM_STATE_RUNNING) {
    return make_error(ErrorCode::kInternal, "Start {}: state {} ({})", name,
                      v1::VmState_Name(started.response.vm().state()),
                      started.response.vm().exit().reason());
  }
  // The guest kernel serves its control channel once booted: a one-page workload proves it.
  v1::StartWorkloadRequest workload;
  workload.set_name(name);
  workload.set_kind(v1::WORKLOAD_KIND_TOUCH_SEQUENTIAL);
  workload.set_bytes(kPage);
  workload.set_seed(1);
  auto answered = call(*api.guest, &v1::GuestService::Stub::StartWorkload, workload, kBootTimeout);
  if (!answered.ok()) {
    return status_error("the guest of " + name + " did not answer a workload", answered.status);
  }
  v1::GetVmRequest get;
  get.set_name(name);
  auto got = call(*api.vm, &v1::VmService::Stub::Get, get);
  if (!got.ok()) {
    return status_error("Get " + name, got.status);
  }
  return got.response.vm();
}

Result<v1::Vm> wait_for_vm(Api& api, const std::string& name,
                           const std::function<bool(const v1::Vm&)>& done,
                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  v1::GetVmRequest get;
  get.set_name(name);
  v1::Vm last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto got = call(*api.vm, &v1::VmService::Stub::Get, get);
    if (!got.ok()) {
      return status_error("Get " + name, got.status);
    }
    last = got.response.vm();
    if (done(last)) {
      return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return make_error(ErrorCode::kInternal, "{} did not get there within {} ms (last state {})", name,
                    timeout.count(), v1::VmState_Name(last.state()));
}

Result<v1::MemoryStats> memory_stats(Api& api, const std::string& name) {
  v1::GetMemoryStatsRequest request;
  request.set_name(name);
  auto reply = call(*api.memory, &v1::MemoryService::Stub::GetMemoryStats, request);
  if (!reply.ok()) {
    return status_error("GetMemoryStats " + name, reply.status);
  }
  return reply.response.stats();
}

Result<std::vector<v1::Mapping>> dump_stage2_all(Api& api, const std::string& name,
                                                 uint32_t page_size, int* pages) {
  std::vector<v1::Mapping> mappings;
  v1::DumpStage2Request request;
  request.set_name(name);
  request.set_page_size(page_size);
  int count = 0;
  do {
    auto reply = call(*api.memory, &v1::MemoryService::Stub::DumpStage2, request);
    if (!reply.ok()) {
      return status_error("DumpStage2 " + name + " page " + std::to_string(count), reply.status);
    }
    ++count;
    if (reply.response.dump().mappings_size() > static_cast<int>(page_size)) {
      return make_error(ErrorCode::kInternal, "DumpStage2 page {} has {} mappings, above {}", count,
                        reply.response.dump().mappings_size(), page_size);
    }
    for (const v1::Mapping& mapping : reply.response.dump().mappings()) {
      mappings.push_back(mapping);
    }
    request.set_page_token(reply.response.next_page_token());
  } while (!request.page_token().empty() && count < 100000);
  if (pages != nullptr) {
    *pages = count;
  }
  return mappings;
}

uint64_t bytes_with_backing(const std::vector<v1::Mapping>& mappings, v1::Backing backing) {
  uint64_t bytes = 0;
  for (const v1::Mapping& mapping : mappings) {
    if (mapping.state().backing() == backing) {
      bytes += mapping.range().size();
    }
  }
  return bytes;
}

}  // namespace hvmm::e2e
