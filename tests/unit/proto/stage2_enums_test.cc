// The hvmm.v1 stage-2 messages describe the stage-2 library's own model (stage2/attributes.h):
// the Permissions and Backing enums carry the library's encodings, number for number, so a
// dump converts them with a cast; MemoryType names the same four memory types; PageState
// and the attribute fields of Mapping have one field per member of the library's structs;
// ChangeReason (notifier.proto) is the library's reason plus one, by name.
// These tests fail when one side gains or renumbers a value the other does not follow.
#include <gtest/gtest.h>

#include <cctype>
#include <map>
#include <string>
#include <type_traits>

#include "hvmm/stage2/attributes.h"
#include "hvmm/stage2/change.h"
#include "hvmm/v1/notifier.pb.h"
#include "hvmm/v1/stage2.pb.h"

namespace hvmm {
namespace {

using google::protobuf::FieldDescriptor;

// "ballooned" -> "BALLOONED".
std::string upper(std::string text) {
  for (char& c : text) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return text;
}

// Each S2AP encoding is the proto value of the same number, named after what it allows.
TEST(ProtoStage2Enums, PermissionsAreTheS2apEncodings) {
  const auto* proto = v1::Permissions_descriptor();
  ASSERT_EQ(proto->value_count(), 4);
  for (uint8_t bits = 0; bits < 4; ++bits) {
    const auto permissions = static_cast<stage2::Permissions>(bits);
    const bool read = stage2::allows_read(permissions);
    const bool write = stage2::allows_write(permissions);
    const std::string want = read && write ? "PERMISSIONS_READ_WRITE"
                             : read        ? "PERMISSIONS_READ_ONLY"
                             : write       ? "PERMISSIONS_WRITE_ONLY"
                                           : "PERMISSIONS_NONE";
    const auto* value = proto->FindValueByNumber(bits);
    ASSERT_NE(value, nullptr) << "S2AP " << int{bits};
    EXPECT_EQ(value->name(), want);
  }
}

// Every backing the library names is the proto value of the same number and name, and the
// proto has no other.
TEST(ProtoStage2Enums, BackingMatchesNumberForNumber) {
  const auto* proto = v1::Backing_descriptor();
  int named = 0;
  for (int number = 0; number < 256; ++number) {
    const std::string name = stage2::backing_name(static_cast<stage2::Backing>(number));
    if (name == "backing-reserved") {
      continue;
    }
    ++named;
    const auto* value = proto->FindValueByNumber(number);
    ASSERT_NE(value, nullptr) << "stage-2 backing " << name << " has no proto value";
    EXPECT_EQ(value->name(), "BACKING_" + upper(name));
  }
  EXPECT_EQ(proto->value_count(), named);
}

// The four MemAttr types the library names are the proto's four, besides UNSPECIFIED (0).
TEST(ProtoStage2Enums, MemoryTypesAreTheSameFour) {
  const std::map<std::string, std::string> proto_name = {
      {"device-ngnrne", "MEMORY_TYPE_DEVICE_NGNRNE"},
      {"device-ngnre", "MEMORY_TYPE_DEVICE_NGNRE"},
      {"normal-nc", "MEMORY_TYPE_NORMAL_NON_CACHEABLE"},
      {"normal-wb", "MEMORY_TYPE_NORMAL_WRITE_BACK"},
  };
  const auto* proto = v1::MemoryType_descriptor();
  int named = 0;
  for (uint8_t memattr = 0; memattr < 16; ++memattr) {
    const std::string name = stage2::memory_type_name(static_cast<stage2::MemoryType>(memattr));
    if (name == "memattr-other") {
      continue;
    }
    ++named;
    auto it = proto_name.find(name);
    ASSERT_NE(it, proto_name.end()) << "stage-2 memory type " << name << " has no proto name";
    EXPECT_NE(proto->FindValueByName(it->second), nullptr) << it->second;
  }
  EXPECT_EQ(named, static_cast<int>(proto_name.size()));
  ASSERT_EQ(proto->value_count(), named + 1);
  EXPECT_EQ(proto->FindValueByNumber(0)->name(), "MEMORY_TYPE_UNSPECIFIED");
}

// Every stage2::ChangeReason is CHANGE_REASON_<its name> (dashes as underscores) at its
// number plus one (0 is UNSPECIFIED), kShootdown = CHANGE_REASON_SHOOTDOWN = 12 among them,
// and the proto has no other value.
TEST(ProtoStage2Enums, ChangeReasonIsTheLibrarysPlusOne) {
  const auto* proto = v1::ChangeReason_descriptor();
  int named = 0;
  for (int number = 0; number < 256; ++number) {
    std::string name = stage2::change_reason_name(static_cast<stage2::ChangeReason>(number));
    if (name == "unknown") {
      continue;
    }
    ++named;
    for (char& c : name) {
      c = c == '-' ? '_' : c;
    }
    const auto* value = proto->FindValueByNumber(number + 1);
    ASSERT_NE(value, nullptr) << "change reason " << name << " has no proto value";
    EXPECT_EQ(value->name(), "CHANGE_REASON_" + upper(name));
  }
  EXPECT_EQ(proto->value_count(), named + 1);
  EXPECT_EQ(proto->FindValueByNumber(0)->name(), "CHANGE_REASON_UNSPECIFIED");
  EXPECT_EQ(static_cast<int>(stage2::ChangeReason::kShootdown) + 1, v1::CHANGE_REASON_SHOOTDOWN);
  EXPECT_EQ(static_cast<int>(stage2::ChangeReason::kFreePageReport) + 1,
            v1::CHANGE_REASON_FREE_PAGE_REPORT);
}

// The type of a message field, for the checks below.
FieldDescriptor::Type field_type(const google::protobuf::Descriptor* message, const char* name) {
  const FieldDescriptor* field = message->FindFieldByName(name);
  EXPECT_NE(field, nullptr) << message->name() << "." << name;
  return field == nullptr ? FieldDescriptor::MAX_TYPE : field->type();
}

// PageState has one field per member of stage2::PageState, with matching types.
TEST(ProtoStage2Enums, PageStateHasTheLibraryFields) {
  // Three members exactly, or this does not compile.
  [[maybe_unused]] auto [backing, write_tracked, pinned] = stage2::PageState{};
  static_assert(std::is_same_v<decltype(backing), stage2::Backing>);
  static_assert(std::is_same_v<decltype(write_tracked), bool>);
  static_assert(std::is_same_v<decltype(pinned), bool>);
  const auto* proto = v1::PageState::descriptor();
  EXPECT_EQ(proto->field_count(), 3);
  EXPECT_EQ(field_type(proto, "backing"), FieldDescriptor::TYPE_ENUM);
  EXPECT_EQ(field_type(proto, "write_tracked"), FieldDescriptor::TYPE_BOOL);
  EXPECT_EQ(field_type(proto, "pinned"), FieldDescriptor::TYPE_BOOL);
  EXPECT_EQ(proto->FindFieldByName("backing")->enum_type(), v1::Backing_descriptor());
}

// Mapping carries the attributes a guest access is checked against: permissions,
// executable and memory type, each with the type that matches the library's member.
// (Shareability is the fourth member; the dump does not report it.)
TEST(ProtoStage2Enums, MappingCarriesTheAccessAttributes) {
  // Four members exactly, or this does not compile.
  [[maybe_unused]] auto [permissions, memory_type, shareability, executable] = stage2::Attributes{};
  static_assert(std::is_same_v<decltype(executable), bool>);
  const auto* proto = v1::Mapping::descriptor();
  EXPECT_EQ(field_type(proto, "permissions"), FieldDescriptor::TYPE_ENUM);
  EXPECT_EQ(proto->FindFieldByName("permissions")->enum_type(), v1::Permissions_descriptor());
  EXPECT_EQ(field_type(proto, "memory_type"), FieldDescriptor::TYPE_ENUM);
  EXPECT_EQ(proto->FindFieldByName("memory_type")->enum_type(), v1::MemoryType_descriptor());
  EXPECT_EQ(field_type(proto, "executable"), FieldDescriptor::TYPE_BOOL);
  EXPECT_EQ(field_type(proto, "state"), FieldDescriptor::TYPE_MESSAGE);
  EXPECT_EQ(proto->FindFieldByName("state")->message_type(), v1::PageState::descriptor());
}

}  // namespace
}  // namespace hvmm
