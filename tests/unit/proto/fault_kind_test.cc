// The fault log's FaultKind and FaultResolution (vmm/fault/fault_kind.h) against hvmm.v1's:
// FaultKind is the proto's number for number (log name "write-protect" is
// FAULT_KIND_WRITE_PROTECT, the MMIO "unbacked" is FAULT_KIND_MMIO_UNBACKED, the memslot's
// "write-protected" refusal is FAULT_KIND_PERMISSION), and each resolution reports as an
// existing proto value. These tests fail when one side gains or renumbers a value.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "hvmm/v1/stage2.pb.h"
#include "hvmm/vmm/fault/fault_kind.h"

namespace hvmm {
namespace {

using vmm::FaultKind;
using vmm::FaultResolution;

// The proto name each log name stands for.
const std::map<std::string, std::string> kKindProtoNames = {
    {"unbacked", "FAULT_KIND_MMIO_UNBACKED"},      {"missing", "FAULT_KIND_MISSING"},
    {"ballooned", "FAULT_KIND_BALLOONED"},         {"reclaimed", "FAULT_KIND_RECLAIMED"},
    {"write-protect", "FAULT_KIND_WRITE_PROTECT"}, {"write-protected", "FAULT_KIND_PERMISSION"},
    {"memslot-race", "FAULT_KIND_MEMSLOT_RACE"},
};

// Every FaultKind number is the proto value of the same number and the expected name, and
// the proto has exactly these plus UNSPECIFIED.
TEST(ProtoFaultKind, MatchesNumberForNumber) {
  const auto* proto = v1::FaultKind_descriptor();
  int named = 0;
  for (size_t number = 1; number < vmm::kFaultKindCount; ++number) {
    const std::string name(vmm::fault_kind_name(static_cast<FaultKind>(number)));
    ASSERT_NE(name, "kind-unknown") << number;
    ++named;
    auto want = kKindProtoNames.find(name);
    ASSERT_NE(want, kKindProtoNames.end()) << "log kind " << name << " has no proto name here";
    const auto* value = proto->FindValueByNumber(static_cast<int>(number));
    ASSERT_NE(value, nullptr) << "log kind " << name << " has no proto value";
    EXPECT_EQ(value->name(), want->second);
    EXPECT_EQ(vmm::fault_kind_from_name(name), static_cast<FaultKind>(number));
  }
  EXPECT_EQ(vmm::fault_kind_name(static_cast<FaultKind>(vmm::kFaultKindCount)), "kind-unknown");
  EXPECT_EQ(proto->value_count(), named + 1);
  EXPECT_EQ(proto->FindValueByNumber(0)->name(), "FAULT_KIND_UNSPECIFIED");
}

// Each resolution reports as the proto value its comment names; every proto value but
// UNSPECIFIED and INJECTED (reported to the guest) is used.
TEST(ProtoFaultResolution, EachLogNameHasItsProtoValue) {
  const std::map<std::string, std::string> want = {
      {"read-all-ones", "FAULT_RESOLUTION_EMULATED"},
      {"write-dropped", "FAULT_RESOLUTION_EMULATED"},
      {"served-from-ram", "FAULT_RESOLUTION_EMULATED"},
      {"zero-fill", "FAULT_RESOLUTION_ZERO_FILL"},
      {"woken", "FAULT_RESOLUTION_WOKEN"},
      {"unprotected", "FAULT_RESOLUTION_UNPROTECTED"},
      {"failed", "FAULT_RESOLUTION_FAILED"},
      {"restored", "FAULT_RESOLUTION_COPIED"},
  };
  const auto* proto = v1::FaultResolution_descriptor();
  ASSERT_EQ(want.size(), vmm::kFaultResolutionCount);
  for (size_t number = 0; number < vmm::kFaultResolutionCount; ++number) {
    const auto resolution = static_cast<FaultResolution>(number);
    const std::string name(vmm::fault_resolution_name(resolution));
    auto it = want.find(name);
    ASSERT_NE(it, want.end()) << "resolution " << name;
    const auto* value = proto->FindValueByNumber(vmm::fault_resolution_proto_number(resolution));
    ASSERT_NE(value, nullptr) << name;
    EXPECT_EQ(value->name(), it->second) << name;
  }
  EXPECT_EQ(proto->value_count(), 8);
}

}  // namespace
}  // namespace hvmm
