// VMs of the bundled guest kernel under the daemon, for the end-to-end tests: create and start
// one and wait until its guest answers, wait for a VM to reach a state, read memory figures.
// Times are generous: inside the nested-KVM guest everything runs 10-100 times slower.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "api.h"
#include "hvmm/base/result.h"

namespace hvmm::e2e {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;
inline constexpr uint64_t kPage = 4096;

// How long a guest may take to boot and answer its first request.
inline constexpr std::chrono::milliseconds kBootTimeout{180000};

// The spec of a guest-kernel VM with `memory_bytes` of RAM, a balloon and the control channel.
v1::VmSpec guest_spec(uint64_t memory_bytes);

// Create `name` from `spec`, start it (waiting until it runs) and wait until the guest kernel
// answers a request: the VM as Get reports it then.
Result<v1::Vm> start_guest_vm(Api& api, const std::string& name, const v1::VmSpec& spec);

// Wait up to `timeout` for `name` to satisfy `done` (Get polled): the VM as it was then.
Result<v1::Vm> wait_for_vm(Api& api, const std::string& name,
                           const std::function<bool(const v1::Vm&)>& done,
                           std::chrono::milliseconds timeout);

// GetMemoryStats of `name`, or the call's error.
Result<v1::MemoryStats> memory_stats(Api& api, const std::string& name);

// Every mapping of a DumpStage2 of `name`, following the page tokens (`page_size` per call);
// `pages` is set to how many responses it took.
Result<std::vector<v1::Mapping>> dump_stage2_all(Api& api, const std::string& name,
                                                 uint32_t page_size, int* pages = nullptr);

// The bytes of `mappings` whose backing is `backing`.
uint64_t bytes_with_backing(const std::vector<v1::Mapping>& mappings, v1::Backing backing);

// The call's error as a Result error (for HVMM_TRY-style use of a Reply).
Error status_error(const std::string& what, const grpc::Status& status);

}  // namespace hvmm::e2e
