// End-to-end: bad requests against a running guest-kernel VM, the ones only a real VM process
// can judge (ranges against its IPA space, targets against its RAM, workloads its guest
// refuses) and wrong state transitions. Each gets the right status code and a message naming
// the field; after each one the daemon and the VM still serve, and the guest still works.
#include <gtest/gtest.h>

#include <functional>
#include <limits>

#include "daemon_test.h"
#include "guest_vms.h"

namespace hvmm::e2e {
namespace {

using std::chrono::seconds;

constexpr uint64_t kVmMemory = 128 * kMiB;
constexpr uint64_t kHuge = std::numeric_limits<uint64_t>::max();

struct BadRequest {
  std::string what;
  std::function<grpc::Status(Api&)> send;
  grpc::StatusCode code;
  std::string field;  // the message names it
};

v1::IpaRange range(uint64_t start, uint64_t size) {
  v1::IpaRange r;
  r.set_start(start);
  r.set_size(size);
  return r;
}

grpc::Status dump(Api& api, const v1::IpaRange& r, uint32_t page_size) {
  v1::DumpStage2Request request;
  request.set_name("target");
  *request.mutable_range() = r;
  request.set_page_size(page_size);
  return call(*api.memory, &v1::MemoryService::Stub::DumpStage2, request).status;
}

grpc::Status stage2_shootdown(Api& api, const v1::IpaRange& r) {
  v1::TlbShootdownRequest request;
  request.set_name("target");
  request.set_stage(v1::TLB_STAGE_2);
  *request.mutable_range() = r;
  return call(*api.tlb, &v1::TlbService::Stub::Shootdown, request).status;
}

grpc::Status balloon(Api& api, uint64_t target) {
  v1::SetBalloonTargetRequest request;
  request.set_name("target");
  request.set_target_bytes(target);
  return call(*api.memory, &v1::MemoryService::Stub::SetBalloonTarget, request).status;
}

grpc::Status workload(Api& api, uint64_t bytes) {
  v1::StartWorkloadRequest request;
  request.set_name("target");
  request.set_kind(v1::WORKLOAD_KIND_TOUCH_SEQUENTIAL);
  request.set_bytes(bytes);
  return call(*api.guest, &v1::GuestService::Stub::StartWorkload, request).status;
}

grpc::Status age(Api& api, const v1::IpaRange& r) {
  v1::AgeRequest request;
  request.set_name("target");
  *request.mutable_range() = r;
  return call(*api.notifier, &v1::NotifierService::Stub::Age, request).status;
}

grpc::Status invalidate(Api& api, const v1::IpaRange& r) {
  v1::InvalidateRequest request;
  request.set_name("target");
  *request.mutable_range() = r;
  return call(*api.notifier, &v1::NotifierService::Stub::Invalidate, request).status;
}

std::vector<BadRequest> bad_requests() {
  using grpc::StatusCode;
  return {
      {"dump of a misaligned range", [](Api& api) { return dump(api, range(1, kPage), 0); },
       StatusCode::INVALID_ARGUMENT, "range"},
      {"dump of an overflowing range",
       [](Api& api) { return dump(api, range(kHuge - kPage + 1, 2 * kPage), 0); },
       StatusCode::INVALID_ARGUMENT, "range"},
      {"dump with page_size 10001", [](Api& api) { return dump(api, range(0, 0), 10001); },
       StatusCode::INVALID_ARGUMENT, "page_size"},
      {"dump with a forged page token",
       [](Api& api) {
         v1::DumpStage2Request request;
         request.set_name("target");
         request.set_page_token("not-a-token");
         return call(*api.memory, &v1::MemoryService::Stub::DumpStage2, request).status;
       },
       StatusCode::INVALID_ARGUMENT, "page_token"},
      {"stage-2 shootdown of a misaligned range",
       [](Api& api) { return stage2_shootdown(api, range(kPage, 100)); },
       StatusCode::INVALID_ARGUMENT, "range"},
      {"stage-2 shootdown beyond the IPA space",
       [](Api& api) { return stage2_shootdown(api, range(kHuge - kPage + 1, kPage)); },
       StatusCode::INVALID_ARGUMENT, "range"},
      {"shootdown of no stage",
       [](Api& api) {
         v1::TlbShootdownRequest request;
         request.set_name("target");
         return call(*api.tlb, &v1::TlbService::Stub::Shootdown, request).status;
       },
       StatusCode::INVALID_ARGUMENT, "stage"},
      {"stage-1 range of length 0",
       [](Api& api) {
         v1::TlbShootdownRequest request;
         request.set_name("target");
         request.set_stage(v1::TLB_STAGE_1);
         request.mutable_stage1()->set_scope(v1::STAGE1_SCOPE_RANGE);
         request.mutable_stage1()->set_workload(1);
         request.mutable_stage1()->set_va(0x400000);
         return call(*api.tlb, &v1::TlbService::Stub::Shootdown, request).status;
       },
       StatusCode::INVALID_ARGUMENT, "length"},
      {"balloon target above RAM", [](Api& api) { return balloon(api, 2 * kVmMemory); },
       StatusCode::INVALID_ARGUMENT, "target_bytes"},
      {"balloon target -1 (huge)", [](Api& api) { return balloon(api, kHuge); },
       StatusCode::INVALID_ARGUMENT, "target_bytes"},
      {"workload of 0 bytes", [](Api& api) { return workload(api, 0); },
       StatusCode::INVALID_ARGUMENT, "bytes"},
      {"workload of a page and a byte", [](Api& api) { return workload(api, kPage + 1); },
       StatusCode::INVALID_ARGUMENT, "bytes"},
      {"age of a misaligned range", [](Api& api) { return age(api, range(kPage + 8, kPage)); },
       StatusCode::INVALID_ARGUMENT, "range"},
      {"invalidate of an overflowing range",
       [](Api& api) { return invalidate(api, range(kHuge & ~(kPage - 1), 2 * kPage)); },
       StatusCode::INVALID_ARGUMENT, "range"},
      {"dirty log without dirty tracking",
       [](Api& api) {
         v1::GetDirtyLogRequest request;
         request.set_name("target");
         return call(*api.memory, &v1::MemoryService::Stub::GetDirtyLog, request).status;
       },
       StatusCode::FAILED_PRECONDITION, "dirty"},
      {"start of a running VM",
       [](Api& api) {
         v1::StartVmRequest request;
         request.set_name("target");
         return call(*api.vm, &v1::VmService::Stub::Start, request).status;
       },
       StatusCode::FAILED_PRECONDITION, "RUNNING"},
      {"delete of a running VM without force",
       [](Api& api) {
         v1::DeleteVmRequest request;
         request.set_name("target");
         return call(*api.vm, &v1::VmService::Stub::Delete, request).status;
       },
       StatusCode::FAILED_PRECONDITION, "RUNNING"},
      {"create of an existing name",
       [](Api& api) {
         v1::CreateVmRequest request;
         request.set_name("target");
         *request.mutable_spec() = guest_spec(kVmMemory);
         return call(*api.vm, &v1::VmService::Stub::Create, request).status;
       },
       StatusCode::ALREADY_EXISTS, "target"},
      {"exit of a workload that is not held",
       [](Api& api) {
         v1::WorkloadRequest request;
         request.set_name("target");
         request.set_workload(4000);
         return call(*api.guest, &v1::GuestService::Stub::ExitWorkload, request).status;
       },
       StatusCode::NOT_FOUND, "workload"},
  };
}

class BadRequests : public DaemonTest {};

// Case-insensitive "contains".
bool mentions(std::string text, std::string word) {
  for (auto* s : {&text, &word}) {
    for (char& c : *s) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return text.find(word) != std::string::npos;
}

// Every bad request gets its code and a message naming the field; the VM keeps running and
// its guest still does work afterwards.
TEST_F(BadRequests, AgainstARunningVmEachGetsItsCodeAndTheVmKeepsServing) {
  auto vm = start_guest_vm(api(), "target", guest_spec(kVmMemory));
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  for (const BadRequest& request : bad_requests()) {
    SCOPED_TRACE(request.what);
    const grpc::Status status = request.send(api());
    EXPECT_EQ(status.error_code(), request.code) << describe(status);
    EXPECT_TRUE(mentions(status.error_message(), request.field))
        << "the message does not name " << request.field << ": " << status.error_message();
    auto stats = memory_stats(api(), "target");
    ASSERT_TRUE(stats.ok()) << "after " << request.what << ": " << stats.error().message;
  }
  auto worked = workload(api(), 2 * kMiB);
  EXPECT_TRUE(worked.ok()) << describe(worked);
  v1::GetVmRequest get;
  get.set_name("target");
  auto still = call(*api().vm, &v1::VmService::Stub::Get, get);
  ASSERT_TRUE(still.ok()) << describe(still.status);
  EXPECT_EQ(still.response.vm().state(), v1::VM_STATE_RUNNING);
  EXPECT_EQ(still.response.vm().pid(), vm->pid());
  EXPECT_TRUE(daemon().running());
}

}  // namespace
}  // namespace hvmm::e2e
