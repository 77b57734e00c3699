// End-to-end: WatchFaults through the daemon sees the stage-2 fault of an access to an IPA
// with nothing behind it (GuestService.Probe into the MMIO hole, where no device is), with
// the fields of the fault log; the VM's fault counts include it.
#include <gtest/gtest.h>

#include "daemon_test.h"
#include "guest_vms.h"
#include "stream_reader.h"

namespace hvmm::e2e {
namespace {

using std::chrono::seconds;

// The start of the 32-bit MMIO hole: no RAM, and the virtio-mmio windows begin higher up.
constexpr uint64_t kUnbackedIpa = uint64_t{3} << 30;

class Faults : public DaemonTest {};

// Probe `ipa` of `name` (read, or write `value`) until `watch` sees its fault or a minute
// passed: the watch call starts asynchronously, so the first probes may come before it.
std::optional<v1::Fault> probe_until_seen(Api& api, StreamReader<v1::Fault>& watch,
                                          const std::string& name, uint64_t ipa, bool write,
                                          uint32_t* value) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    v1::ProbeRequest probe;
    probe.set_name(name);
    probe.set_ipa(ipa);
    probe.set_write(write);
    probe.set_value(0x5a5a1234);
    auto reply = call(*api.guest, &v1::GuestService::Stub::Probe, probe, seconds(60));
    EXPECT_TRUE(reply.ok()) << describe(reply.status);
    if (!reply.ok()) {
      return std::nullopt;
    }
    *value = reply.response.value();
    auto seen = watch.wait_for(
        [ipa, write](const v1::Fault& fault) {
          return fault.ipa() == ipa &&
                 fault.access() == (write ? v1::ACCESS_WRITE : v1::ACCESS_READ);
        },
        seconds(2));
    if (seen) {
      return seen;
    }
  }
  return std::nullopt;
}

// A read of the MMIO hole returns all-ones and the watch gets its record (VM name, VMID,
// the IPA, a read of 4 bytes, MMIO_UNBACKED, EMULATED); a write is seen as a write.
TEST_F(Faults, WatchFaultsSeesAnUnbackedAccess) {
  auto vm = start_guest_vm(api(), "prober", guest_spec(128 * kMiB));
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  StreamReader<v1::Fault> watch([this](grpc::ClientContext* context) {
    v1::WatchFaultsRequest request;
    request.set_name("prober");
    request.add_kinds(v1::FAULT_KIND_MMIO_UNBACKED);
    return api().faults->Watch(context, request);
  });
  uint32_t value = 0;
  auto read = probe_until_seen(api(), watch, "prober", kUnbackedIpa, false, &value);
  ASSERT_TRUE(read.has_value()) << "no fault record for a read of " << kUnbackedIpa << "; "
                                << watch.messages().size() << " records";
  EXPECT_EQ(value, 0xffffffffu) << "an unbacked read returns all-ones";
  EXPECT_EQ(read->vm(), "prober");
  EXPECT_EQ(read->vmid(), vm->vmid());
  EXPECT_EQ(read->size(), 4u);
  EXPECT_EQ(read->kind(), v1::FAULT_KIND_MMIO_UNBACKED);
  EXPECT_EQ(read->resolution(), v1::FAULT_RESOLUTION_EMULATED);
  EXPECT_GT(read->time_unix_ns(), 0u);

  auto write = probe_until_seen(api(), watch, "prober", kUnbackedIpa + 8, true, &value);
  ASSERT_TRUE(write.has_value()) << "no fault record for a write";
  EXPECT_EQ(write->kind(), v1::FAULT_KIND_MMIO_UNBACKED);
  for (const v1::Fault& fault : watch.messages()) {
    EXPECT_EQ(fault.kind(), v1::FAULT_KIND_MMIO_UNBACKED) << "the kinds filter let another through";
  }

  auto stats = memory_stats(api(), "prober");
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  uint64_t unbacked = 0;
  for (const v1::FaultCount& count : stats->faults()) {
    if (count.kind() == v1::FAULT_KIND_MMIO_UNBACKED) {
      unbacked += count.count();
    }
  }
  EXPECT_GE(unbacked, 2u);
}

}  // namespace
}  // namespace hvmm::e2e
