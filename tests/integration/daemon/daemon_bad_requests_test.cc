// Bad requests, table-driven: each gets the right status code and a message naming the field
// (or the state), and the daemon keeps serving (a List after each, and the VMs it had are all
// still there and unchanged).
#include <sys/stat.h>

#include <cmath>
#include <functional>

#include "daemon_client.h"

namespace hvmm::testing {
namespace {

using Call = std::function<grpc::Status(DaemonClient&)>;

struct BadRequest {
  std::string what;
  Call call;
  grpc::StatusCode code;
  std::string named;  // the message must contain this
};

constexpr uint64_t kMiB = uint64_t{1} << 20;

v1::VmSpec spec_of(uint64_t memory, const std::string& kernel = "") {
  v1::VmSpec spec;
  spec.set_memory_bytes(memory);
  spec.set_kernel(kernel);
  return spec;
}

Call create(const std::string& name, v1::VmSpec spec) {
  return [name, spec](DaemonClient& client) { return client.create(name, spec, false); };
}

template <typename Edit>
Call create_with(Edit edit) {
  v1::VmSpec spec = spec_of(64 * kMiB);
  edit(spec);
  return create("bad", spec);
}

Call get(const std::string& name) {
  return [name](DaemonClient& client) {
    v1::GetVmRequest request;
    request.set_name(name);
    v1::GetVmResponse response;
    return client.vms->Get(client.context().get(), request, &response);
  };
}

// A unary call of `method` on `stub` with `request`.
template <typename Request, typename Response, typename Stub>
Call unary(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
           std::unique_ptr<Stub> DaemonClient::*stub, Request request) {
  return [method, stub, request](DaemonClient& client) {
    Response response;
    return ((*(client.*stub)).*method)(client.context().get(), request, &response);
  };
}

template <typename Edit>
Call balloon(Edit edit) {
  v1::SetBalloonTargetRequest request;
  request.set_name("run");
  edit(request);
  return unary(&v1::MemoryService::Stub::SetBalloonTarget, &DaemonClient::memory, request);
}

template <typename Edit>
Call dump(Edit edit) {
  v1::DumpStage2Request request;
  request.set_name("run");
  edit(request);
  return unary(&v1::MemoryService::Stub::DumpStage2, &DaemonClient::memory, request);
}

template <typename Edit>
Call shootdown(Edit edit) {
  v1::TlbShootdownRequest request;
  request.set_name("run");
  edit(request);
  return unary(&v1::TlbService::Stub::Shootdown, &DaemonClient::tlb, request);
}

template <typename Edit>
Call reclaim(Edit edit) {
  v1::ReclaimRequest request;
  request.set_name("rec");
  edit(request);
  return unary(&v1::MemoryService::Stub::Reclaim, &DaemonClient::memory, request);
}

template <typename Edit>
Call workload(Edit edit) {
  v1::StartWorkloadRequest request;
  request.set_name("run");
  request.set_kind(v1::WORKLOAD_KIND_TOUCH_SEQUENTIAL);
  request.set_bytes(4096);
  edit(request);
  return unary(&v1::GuestService::Stub::StartWorkload, &DaemonClient::guest, request);
}

// A server stream's final status (after whatever it sent).
template <typename Message, typename Start>
Call stream(Start start) {
  return [start](DaemonClient& client) {
    auto context = DaemonClient::context(std::chrono::seconds(5));
    auto reader = start(client, context.get());
    Message message;
    while (reader->Read(&message)) {
    }
    return reader->Finish();
  };
}

Call watch_notifier(v1::WatchNotifierRequest request) {
  return stream<v1::NotifierEvent>([request](DaemonClient& client, grpc::ClientContext* context) {
    return client.notifier->Watch(context, request);
  });
}

Call watch_faults(v1::WatchFaultsRequest request) {
  return stream<v1::Fault>([request](DaemonClient& client, grpc::ClientContext* context) {
    return client.faults->Watch(context, request);
  });
}

template <typename Edit>
Call host_policy(Edit edit) {
  v1::SetHostPolicyRequest request;
  edit(*request.mutable_policy());
  return unary(&v1::HostPolicyService::Stub::SetHostPolicy, &DaemonClient::policy, request);
}

Call watch_decisions(uint32_t buffer) {
  v1::WatchPolicyDecisionsRequest request;
  request.set_buffer(buffer);
  return stream<v1::PolicyDecisionEvent>(
      [request](DaemonClient& client, grpc::ClientContext* context) {
        return client.policy->WatchDecisions(context, request);
      });
}

v1::IpaRange range(uint64_t start, uint64_t size) {
  v1::IpaRange out;
  out.set_start(start);
  out.set_size(size);
  return out;
}

class BadRequests : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.start()) << daemon_.log();
    client_ = std::make_unique<DaemonClient>(daemon_.channel());
    client_->run("run");
    v1::VmSpec idle = spec_of(64 * kMiB);
    ASSERT_TRUE(client_->create("idle", idle, false).ok());
    v1::VmSpec bare = spec_of(64 * kMiB);
    bare.set_control_channel(false);
    bare.mutable_balloon()->set_disabled(true);
    ASSERT_TRUE(client_->create("bare", bare, true).ok());
    v1::VmSpec reclaiming = spec_of(64 * kMiB);
    reclaiming.set_reclaim_policy("");
    ASSERT_TRUE(client_->create("rec", reclaiming, true).ok());
    ASSERT_TRUE(client_->wait_for_state("bare", v1::VM_STATE_RUNNING));
    ASSERT_TRUE(client_->wait_for_state("rec", v1::VM_STATE_RUNNING));
    fifo_ = dir_.path + "/kernel.fifo";
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
  }

  TempDir dir_;
  std::string fifo_;
  DaemonHarness daemon_{fake_daemon_options()};
  std::unique_ptr<DaemonClient> client_;
};

TEST_F(BadRequests, EachGetsItsCodeAndNamesTheFieldAndTheDaemonServesOn) {
  using Code = grpc::StatusCode;
  const std::string long_name(64, 'a');
  const std::string huge_name(100000, 'n');
  const std::vector<BadRequest> table = {
      // Names.
      {"unknown VM", get("nobody"), Code::NOT_FOUND, "name: no VM named 'nobody'"},
      {"empty name", get(""), Code::INVALID_ARGUMENT, "name: empty"},
      {"oversized name", get(huge_name), Code::INVALID_ARGUMENT, "name: 100000 bytes"},
      {"name of 64 characters", create(long_name, spec_of(64 * kMiB)), Code::INVALID_ARGUMENT,
       "name: 64 bytes"},
      {"name starting with a dash", create("-x", spec_of(64 * kMiB)), Code::INVALID_ARGUMENT,
       "name: '-x' must start with a letter or a digit"},
      {"name with a space", create("a b", spec_of(64 * kMiB)), Code::INVALID_ARGUMENT,
       "outside [A-Za-z0-9._-]"},
      {"name with a slash", create("a/../b", spec_of(64 * kMiB)), Code::INVALID_ARGUMENT,
       "outside [A-Za-z0-9._-]"},
      {"name taken", create("run", spec_of(64 * kMiB)), Code::ALREADY_EXISTS, "name: a VM named"},
      // Memory.
      {"4 KiB of RAM", create("tiny", spec_of(4096)), Code::INVALID_ARGUMENT, "spec.memory_bytes"},
      {"absurd RAM", create("huge", spec_of(uint64_t{1} << 62)), Code::INVALID_ARGUMENT,
       "spec.memory_bytes"},
      {"RAM not page aligned", create("odd", spec_of(64 * kMiB + 1)), Code::INVALID_ARGUMENT,
       "spec.memory_bytes"},
      {"1000 vCPUs", create_with([](v1::VmSpec& s) { s.set_vcpus(1000); }), Code::INVALID_ARGUMENT,
       "spec.vcpus"},
      {"balloon above RAM",
       create_with([](v1::VmSpec& s) { s.mutable_balloon()->set_initial_target_bytes(64 * kMiB); }),
       Code::INVALID_ARGUMENT, "spec.balloon.initial_target_bytes"},
      {"fault-around not a power of two",
       create_with([](v1::VmSpec& s) { s.set_fault_around_bytes(3000); }), Code::INVALID_ARGUMENT,
       "spec.fault_around_bytes"},
      {"unknown dirty tracking", create_with([](v1::VmSpec& s) { s.set_dirty_tracking("bitmap"); }),
       Code::INVALID_ARGUMENT, "spec.dirty_tracking"},
      // Files.
      {"missing kernel", create("nokernel", spec_of(64 * kMiB, "/nonexistent/vmlinux")),
       Code::INVALID_ARGUMENT, "spec.kernel"},
      {"kernel is a FIFO", create("fifo", spec_of(64 * kMiB, fifo_)), Code::INVALID_ARGUMENT,
       "spec.kernel"},
      {"kernel is a directory", create("dir", spec_of(64 * kMiB, dir_.path)),
       Code::INVALID_ARGUMENT, "spec.kernel"},
      {"kernel is not an ELF", create("notelf", spec_of(64 * kMiB, "/etc/hostname")),
       Code::INVALID_ARGUMENT, "spec.kernel"},
      {"initrd is a directory", create_with([this](v1::VmSpec& s) { s.set_initrd(dir_.path); }),
       Code::INVALID_ARGUMENT, "spec.initrd"},
      // Oversized strings.
      {"kernel path of 5000 bytes", create("longpath", spec_of(64 * kMiB, std::string(5000, 'k'))),
       Code::INVALID_ARGUMENT, "spec.kernel: 5000 bytes long"},
      {"cmdline of 70000 bytes",
       create_with([](v1::VmSpec& s) { s.set_cmdline(std::string(70000, 'c')); }),
       Code::INVALID_ARGUMENT, "spec.cmdline: 70000 bytes long"},
      {"policy of 2000 bytes",
       create_with([](v1::VmSpec& s) { s.set_reclaim_policy(std::string(2000, 'p')); }),
       Code::INVALID_ARGUMENT, "spec.reclaim_policy: 2000 bytes long"},
      // Policies.
      {"bad reclaim policy",
       create_with([](v1::VmSpec& s) { s.set_reclaim_policy("cold=banana"); }),
       Code::INVALID_ARGUMENT, "spec.reclaim_policy"},
      {"bad set_policy", reclaim([](auto& r) { r.set_set_policy("cold=banana"); }),
       Code::INVALID_ARGUMENT, "set_policy"},
      {"set_policy of 2000 bytes",
       reclaim([](auto& r) { r.set_set_policy(std::string(2000, 'x')); }), Code::INVALID_ARGUMENT,
       "set_policy: 2000 bytes long"},
      {"reclaim without an action", reclaim([](auto&) {}), Code::INVALID_ARGUMENT, "action"},
      {"floor above RAM",
       create_with([](v1::VmSpec& s) { s.mutable_policy()->set_floor_bytes(65 * kMiB); }),
       Code::INVALID_ARGUMENT, "spec.policy.floor_bytes"},
      // The host policy.
      {"negative pressure", host_policy([](auto& p) { p.set_max_pressure_some_avg10(-1); }),
       Code::INVALID_ARGUMENT, "policy.max_pressure_some_avg10"},
      {"NaN pressure", host_policy([](auto& p) { p.set_max_pressure_some_avg10(std::nan("")); }),
       Code::INVALID_ARGUMENT, "policy.max_pressure_some_avg10"},
      {"pressure above 100", host_policy([](auto& p) { p.set_max_pressure_some_avg10(100.5); }),
       Code::INVALID_ARGUMENT, "policy.max_pressure_some_avg10"},
      {"hysteresis above 1", host_policy([](auto& p) { p.set_hysteresis(1.01); }),
       Code::INVALID_ARGUMENT, "policy.hysteresis"},
      {"negative hysteresis", host_policy([](auto& p) { p.set_hysteresis(-0.5); }),
       Code::INVALID_ARGUMENT, "policy.hysteresis"},
      {"interval of 10 ms", host_policy([](auto& p) { p.set_interval_ms(10); }),
       Code::INVALID_ARGUMENT, "policy.interval_ms"},
      {"interval above an hour", host_policy([](auto& p) { p.set_interval_ms(3600001); }),
       Code::INVALID_ARGUMENT, "policy.interval_ms"},
      {"step below a page", host_policy([](auto& p) { p.set_step_bytes(1000); }),
       Code::INVALID_ARGUMENT, "policy.step_bytes"},
      {"balloon timeout of 1 ms", host_policy([](auto& p) { p.set_balloon_timeout_ms(1); }),
       Code::INVALID_ARGUMENT, "policy.balloon_timeout_ms"},
      {"decision buffer of 1", watch_decisions(1), Code::INVALID_ARGUMENT, "buffer"},
      {"reclaim 0 epochs", reclaim([](auto& r) { r.set_epochs(0); }), Code::INVALID_ARGUMENT,
       "epochs"},
      {"reclaim 1000 epochs", reclaim([](auto& r) { r.set_epochs(1000); }), Code::INVALID_ARGUMENT,
       "epochs"},
      {"reclaim a VM without reclaim", reclaim([](auto& r) {
         r.set_name("run");
         r.set_epochs(1);
       }),
       Code::FAILED_PRECONDITION, "spec.reclaim_policy unset"},
      // States.
      {"start a running VM",
       unary(&v1::VmService::Stub::Start, &DaemonClient::vms,
             [] {
               v1::StartVmRequest r;
               r.set_name("run");
               return r;
             }()),
       Code::FAILED_PRECONDITION, "VM 'run' is RUNNING"},
      {"stop a created VM", [](DaemonClient& c) { return c.stop("idle"); },
       Code::FAILED_PRECONDITION, "VM 'idle' is CREATED"},
      {"delete a running VM", [](DaemonClient& c) { return c.remove("run"); },
       Code::FAILED_PRECONDITION, "VM 'run' is RUNNING"},
      {"stats of a created VM", [](DaemonClient& c) { return c.stats("idle", nullptr); },
       Code::FAILED_PRECONDITION, "VM 'idle' is CREATED (it must be RUNNING)"},
      {"stop with a grace of days", [](DaemonClient& c) { return c.stop("run", 1u << 31); },
       Code::INVALID_ARGUMENT, "grace_ms"},
      // Balloon targets.
      {"negative target as huge", balloon([](auto& r) { r.set_target_bytes(uint64_t(-4096)); }),
       Code::INVALID_ARGUMENT, "target_bytes: 18446744073709547520 is not below the RAM size"},
      {"target of all the RAM", balloon([](auto& r) { r.set_target_bytes(64 * kMiB); }),
       Code::INVALID_ARGUMENT, "target_bytes"},
      {"wait of days", balloon([](auto& r) { r.set_wait_ms(1u << 31); }), Code::INVALID_ARGUMENT,
       "wait_ms"},
      {"balloon of a VM without one", balloon([](auto& r) {
         r.set_name("bare");
         r.set_target_bytes(kMiB);
       }),
       Code::FAILED_PRECONDITION, "has no balloon"},
      // Ranges.
      {"dump range start not aligned", dump([](auto& r) { *r.mutable_range() = range(1, 4096); }),
       Code::INVALID_ARGUMENT, "range: start 0x1 is not a multiple of 4 KiB"},
      {"dump range size not aligned", dump([](auto& r) { *r.mutable_range() = range(0, 4097); }),
       Code::INVALID_ARGUMENT, "range: size 0x1001"},
      {"dump range overflowing",
       dump([](auto& r) { *r.mutable_range() = range(0xfffffffffffff000, 0x2000); }),
       Code::INVALID_ARGUMENT, "range: [0xfffffffffffff000, +0x2000) overflows"},
      {"dump of an empty range that starts",
       dump([](auto& r) { *r.mutable_range() = range(4096, 0); }), Code::INVALID_ARGUMENT,
       "range: size 0 with start 0x1000"},
      {"dump page of 20000", dump([](auto& r) { r.set_page_size(20000); }), Code::INVALID_ARGUMENT,
       "page_size"},
      {"dump with a forged token", dump([](auto& r) { r.set_page_token(std::string(1000, 't')); }),
       Code::INVALID_ARGUMENT, "page_token"},
      {"dirty log misaligned",
       unary(&v1::MemoryService::Stub::GetDirtyLog, &DaemonClient::memory,
             [] {
               v1::GetDirtyLogRequest r;
               r.set_name("run");
               *r.mutable_range() = range(0x800, 0x1000);
               return r;
             }()),
       Code::INVALID_ARGUMENT, "range: start 0x800"},
      {"age of an empty range",
       unary(&v1::NotifierService::Stub::Age, &DaemonClient::notifier,
             [] {
               v1::AgeRequest r;
               r.set_name("run");
               return r;
             }()),
       Code::INVALID_ARGUMENT, "range: size 0"},
      {"invalidate with an unknown reason",
       unary(&v1::NotifierService::Stub::Invalidate, &DaemonClient::notifier,
             [] {
               v1::InvalidateRequest r;
               r.set_name("run");
               *r.mutable_range() = range(0, 4096);
               r.set_reason(static_cast<v1::ChangeReason>(99));
               return r;
             }()),
       Code::INVALID_ARGUMENT, "reason: 99"},
      // TLB.
      {"shootdown without a stage", shootdown([](auto&) {}), Code::INVALID_ARGUMENT, "stage"},
      {"stage 2 misaligned", shootdown([](auto& r) {
         r.set_stage(v1::TLB_STAGE_2);
         *r.mutable_range() = range(0x1234000, 0x10);
       }),
       Code::INVALID_ARGUMENT, "range: size 0x10"},
      {"stage 1 range misaligned", shootdown([](auto& r) {
         r.set_stage(v1::TLB_STAGE_1);
         r.mutable_stage1()->set_scope(v1::STAGE1_SCOPE_RANGE);
         r.mutable_stage1()->set_workload(1);
         r.mutable_stage1()->set_va(0x1001);
         r.mutable_stage1()->set_length(4096);
       }),
       Code::INVALID_ARGUMENT, "stage1.va"},
      {"stage 1 range of length 0", shootdown([](auto& r) {
         r.set_stage(v1::TLB_STAGE_1);
         r.mutable_stage1()->set_scope(v1::STAGE1_SCOPE_RANGE);
         r.mutable_stage1()->set_workload(1);
         r.mutable_stage1()->set_va(0x1000);
       }),
       Code::INVALID_ARGUMENT, "stage1.length: 0"},
      {"stage 1 unknown scope", shootdown([](auto& r) {
         r.set_stage(v1::TLB_STAGE_1);
         r.mutable_stage1()->set_scope(static_cast<v1::Stage1Scope>(9));
       }),
       Code::INVALID_ARGUMENT, "stage1.scope"},
      {"stage 1 without a control channel", shootdown([](auto& r) {
         r.set_name("bare");
         r.set_stage(v1::TLB_STAGE_1);
         r.mutable_stage1()->set_scope(v1::STAGE1_SCOPE_KERNEL_ALL);
       }),
       Code::FAILED_PRECONDITION, "spec.control_channel false"},
      // Guest.
      {"workload of 0 bytes", workload([](auto& r) { r.set_bytes(0); }), Code::INVALID_ARGUMENT,
       "bytes: 0"},
      {"workload of all the RAM", workload([](auto& r) { r.set_bytes(64 * kMiB); }),
       Code::INVALID_ARGUMENT, "bytes"},
      {"workload without a kind",
       workload([](auto& r) { r.set_kind(v1::WORKLOAD_KIND_UNSPECIFIED); }), Code::INVALID_ARGUMENT,
       "kind"},
      {"probe misaligned",
       unary(&v1::GuestService::Stub::Probe, &DaemonClient::guest,
             [] {
               v1::ProbeRequest r;
               r.set_name("run");
               r.set_ipa(3);
               return r;
             }()),
       Code::INVALID_ARGUMENT, "ipa: 0x3"},
      // Streams.
      {"notifier buffer of 8", watch_notifier([] {
         v1::WatchNotifierRequest r;
         r.set_name("run");
         r.set_buffer(8);
         return r;
       }()),
       Code::INVALID_ARGUMENT, "buffer: 8"},
      {"notifier filter misaligned", watch_notifier([] {
         v1::WatchNotifierRequest r;
         r.set_name("run");
         *r.mutable_filter() = range(0x10, 0x1000);
         return r;
       }()),
       Code::INVALID_ARGUMENT, "filter: start 0x10"},
      {"notifier of an unknown VM", watch_notifier([] {
         v1::WatchNotifierRequest r;
         r.set_name("ghost");
         return r;
       }()),
       Code::NOT_FOUND, "name: no VM named 'ghost'"},
      {"faults of an unknown kind", watch_faults([] {
         v1::WatchFaultsRequest r;
         r.add_kinds(static_cast<v1::FaultKind>(42));
         return r;
       }()),
       Code::INVALID_ARGUMENT, "kinds: 42"},
      {"faults buffer of 100000", watch_faults([] {
         v1::WatchFaultsRequest r;
         r.set_buffer(100000);
         return r;
       }()),
       Code::INVALID_ARGUMENT, "buffer: 100000"},
      {"faults of an unknown VM", watch_faults([] {
         v1::WatchFaultsRequest r;
         r.set_name("ghost");
         return r;
       }()),
       Code::NOT_FOUND, "name: no VM named 'ghost'"},
      {"console of an unknown VM",
       stream<v1::ConsoleLine>([](DaemonClient& client, grpc::ClientContext* context) {
         v1::StreamConsoleRequest r;
         r.set_name("ghost");
         return client.vms->StreamConsole(context, r);
       }),
       Code::NOT_FOUND, "name: no VM named 'ghost'"},
  };
  v1::ListVmsResponse before;
  ASSERT_TRUE(client_->list(&before).ok());
  for (const BadRequest& bad : table) {
    grpc::Status status = bad.call(*client_);
    if (std::getenv("HVMM_TEST_PRINT_MESSAGES") != nullptr) {
      std::printf("%-40s %s\n", bad.what.c_str(), status.error_message().c_str());
    }
    EXPECT_EQ(status.error_code(), bad.code) << bad.what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(bad.named), std::string::npos)
        << bad.what << ": \"" << status.error_message() << "\" does not name \"" << bad.named
        << "\"";
    v1::ListVmsResponse after;
    ASSERT_TRUE(client_->list(&after).ok()) << "the daemon stopped serving after: " << bad.what;
    ASSERT_EQ(after.vms_size(), before.vms_size()) << bad.what;
    for (int i = 0; i < after.vms_size(); ++i) {
      EXPECT_EQ(after.vms(i).name(), before.vms(i).name()) << bad.what;
      EXPECT_EQ(after.vms(i).state(), before.vms(i).state()) << bad.what;
      EXPECT_EQ(after.vms(i).pid(), before.vms(i).pid()) << bad.what;
    }
  }
  // Memory 0 is not an error: it is the default size.
  v1::Vm vm;
  ASSERT_TRUE(client_->create("default", spec_of(0), false, &vm).ok());
  EXPECT_EQ(vm.spec().memory_bytes(), 0u);
  EXPECT_EQ(health_status(daemon_.channel()), 1);
}

}  // namespace
}  // namespace hvmm::testing
