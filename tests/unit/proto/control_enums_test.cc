// What hvmm.v1 passes through to the guest kernel's control channel and to the Machine's
// memory controls, against base/control_protocol.h and vmm/machine/memory_controls.h:
// Stage1Scope is the control protocol's TlbScope and WorkloadKind its WorkloadKind, number
// for number; KvmMmuStats and Stage2TlbStats have one field per figure of the Machine's
// structs, with the same names. These tests fail when one side gains or renumbers a value
// or a figure the other does not follow.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hvmm/base/control_protocol.h"
#include "hvmm/v1/guest.pb.h"
#include "hvmm/v1/memory.pb.h"
#include "hvmm/v1/tlb.pb.h"
#include "hvmm/vmm/machine/memory_controls.h"

namespace hvmm {
namespace {

// Each TlbScope is the Stage1Scope of the same number; the proto has those plus UNSPECIFIED.
TEST(ProtoControlEnums, Stage1ScopeIsTheTlbScope) {
  EXPECT_EQ(static_cast<int>(control::TlbScope::kRange), v1::STAGE1_SCOPE_RANGE);
  EXPECT_EQ(static_cast<int>(control::TlbScope::kAddressSpace), v1::STAGE1_SCOPE_ADDRESS_SPACE);
  EXPECT_EQ(static_cast<int>(control::TlbScope::kKernelAll), v1::STAGE1_SCOPE_KERNEL_ALL);
  EXPECT_EQ(v1::Stage1Scope_descriptor()->value_count(), 4);
}

// Each control WorkloadKind is the proto WorkloadKind of the same number.
TEST(ProtoControlEnums, WorkloadKindIsTheControlKind) {
  EXPECT_EQ(static_cast<int>(control::WorkloadKind::kTouchSequential),
            v1::WORKLOAD_KIND_TOUCH_SEQUENTIAL);
  EXPECT_EQ(static_cast<int>(control::WorkloadKind::kTouchRandom), v1::WORKLOAD_KIND_TOUCH_RANDOM);
  EXPECT_EQ(static_cast<int>(control::WorkloadKind::kTouchMix), v1::WORKLOAD_KIND_TOUCH_MIX);
  EXPECT_EQ(v1::WorkloadKind_descriptor()->value_count(), 4);
}

// The proto's uint64 fields, by name, in field order.
std::vector<std::string> uint64_fields(const google::protobuf::Descriptor* message) {
  std::vector<std::string> names;
  for (int i = 0; i < message->field_count(); ++i) {
    EXPECT_EQ(message->field(i)->type(), google::protobuf::FieldDescriptor::TYPE_UINT64)
        << message->name() << "." << message->field(i)->name();
    names.push_back(message->field(i)->name());
  }
  return names;
}

// KvmMmuStats carries the Machine's five figures (available is the message's presence).
TEST(ProtoControlEnums, KvmMmuStatsHasTheMachinesFigures) {
  // Six members exactly, or this does not compile.
  [[maybe_unused]] auto [available, pages_4k, pages_2m, pages_1g, pf_taken, pf_fixed] =
      vmm::KvmMmuStats{};
  EXPECT_EQ(uint64_fields(v1::KvmMmuStats::descriptor()),
            (std::vector<std::string>{"pages_4k", "pages_2m", "pages_1g", "pf_taken", "pf_fixed"}));
}

// Stage2TlbStats carries the Machine's four TLB figures.
TEST(ProtoControlEnums, Stage2TlbStatsHasTheMachinesFigures) {
  [[maybe_unused]] auto [hits, misses, invalidations, flushes_all] = vmm::Stage2TlbFigures{};
  EXPECT_EQ(uint64_fields(v1::Stage2TlbStats::descriptor()),
            (std::vector<std::string>{"hits", "misses", "invalidations", "flushes_all"}));
}

}  // namespace
}  // namespace hvmm
