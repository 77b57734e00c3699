// Tests of the field -> flag table and of the translation of VmOptions errors.
#include "hvmm/daemon/cli/flag_names.h"

#include <gtest/gtest.h>

#include <set>

#include "hvmm/daemon/cli/run_flags.h"
#include "hvmm/daemon/options/field_names.h"

namespace hvmm::cli {
namespace {

// Every VmOptions field has exactly one row, and no flag serves two fields.
TEST(FieldFlags, OneRowPerField) {
  std::set<std::string_view> fields;
  std::set<std::string_view> flags;
  for (const FieldFlag& row : field_flag_names()) {
    EXPECT_TRUE(fields.insert(row.field).second) << row.field << " twice";
    if (!row.flag.empty()) {
      EXPECT_TRUE(flags.insert(row.flag).second) << row.flag << " twice";
    }
  }
  for (std::string_view field : daemon::field::kVmOptionFields) {
    EXPECT_EQ(fields.count(field), 1u) << field << " has no row";
    EXPECT_NE(find_field(field), nullptr) << field;
  }
  EXPECT_EQ(fields.size(), daemon::field::kVmOptionFields.size());
  EXPECT_EQ(find_field("no_such_field"), nullptr);
}

// Every flag of the table is a real `hvmm run` flag.
TEST(FieldFlags, EveryFlagExists) {
  CLI::App run{"run"};
  RunFlags flags;
  add_run_flags(run, flags);
  for (const FieldFlag& row : field_flag_names()) {
    if (row.flag.empty()) {
      continue;
    }
    EXPECT_NO_THROW(run.get_option(std::string(row.flag))) << row.flag;
  }
}

// Every flag whose errors quote the typed value gets one from typed_values().
TEST(FieldFlags, ValueRowsHaveTypedValues) {
  RunFlags flags;
  const TypedValues typed = typed_values(flags);
  for (const FieldFlag& row : field_flag_names()) {
    if (row.quotes_value) {
      EXPECT_EQ(typed.count(std::string(row.flag)), 1u) << row.flag;
    }
  }
  EXPECT_EQ(typed.at("--memory"), "128M");
  EXPECT_EQ(typed.at("--vcpus"), "1");
}

// The three shapes of a leading field, then references later in the message.
TEST(TranslateFieldError, Shapes) {
  const TypedValues typed{{"--memory", "1T"}, {"--balloon", ""}};
  EXPECT_EQ(translate_field_error("memory_bytes: must be small", typed),
            "--memory 1T: must be small");
  EXPECT_EQ(translate_field_error("balloon_target_bytes: x", typed), "--balloon: x")
      << "no typed value: no quote";
  EXPECT_EQ(translate_field_error("kernel: '/tmp' is a directory", typed),
            "--kernel '/tmp' is a directory");
  EXPECT_EQ(translate_field_error("kernel: cannot open '/x': No such file", typed),
            "--kernel: cannot open '/x': No such file");
  EXPECT_EQ(translate_field_error("reclaim_swap: needs reclaim_policy (why)", {}),
            "--reclaim-swap: needs --reclaim (why)");
  EXPECT_EQ(translate_field_error("initrd: '/a' is big (raise memory_bytes or not)", {}),
            "--initrd '/a' is big (raise --memory or not)");
}

// What names no field, names one without a flag, or names one inside a quoted path or a
// longer word is left alone; one-word fields are translated only when they lead.
TEST(TranslateFieldError, LeavesTheRestAlone) {
  EXPECT_EQ(translate_field_error("KVM unavailable: /dev/kvm", {}), "KVM unavailable: /dev/kvm");
  EXPECT_EQ(translate_field_error("name: bad", {}), "name: bad");
  EXPECT_EQ(translate_field_error("kernel: '/x/memory_bytes' is odd", {}),
            "--kernel '/x/memory_bytes' is odd");
  EXPECT_EQ(translate_field_error("vcpus: the guest's memory_bytes", {}),
            "--vcpus: the guest's --memory");
  EXPECT_EQ(translate_field_error("cmdline: xmemory_bytes memory_bytesx", {}),
            "--cmdline: xmemory_bytes memory_bytesx");
  EXPECT_EQ(translate_field_error("reclaim_policy: needs userfaultfd on", {}),
            "--reclaim: needs userfaultfd on");
  EXPECT_EQ(translate_field_error("invalid kernel: the kernel", {}), "invalid kernel: the kernel");
}

}  // namespace
}  // namespace hvmm::cli
