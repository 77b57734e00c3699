// Tests of the --reclaim policy syntax: every key, sizes, shares, durations, every kind of
// bad input (each error names the key and the fault), and format/parse round trips; a
// change parsed over a running policy, and which keys a running VM cannot change.
#include "hvmm/vmm/reclaim/reclaim_policy.h"

#include <gtest/gtest.h>

#include <string>

namespace hvmm::vmm {
namespace {

using std::chrono::milliseconds;

// The policy `text` parses to; fails the test on an error.
ReclaimPolicy parsed(std::string_view text) {
  auto policy = parse_reclaim_policy(text);
  EXPECT_TRUE(policy.ok()) << text << ": " << policy.error().message;
  return policy ? *policy : ReclaimPolicy{};
}

// The error message parsing `text` gives ("" when it parses).
std::string parse_error(std::string_view text) {
  auto policy = parse_reclaim_policy(text);
  return policy ? "" : policy.error().message;
}

// The empty text is the documented default policy (ASPLOS'19 figures, lz4, dirty log).
TEST(ReclaimPolicy, EmptyTextIsTheDefault) {
  const ReclaimPolicy policy = parsed("");
  EXPECT_FALSE(policy.target_bytes);
  EXPECT_FALSE(policy.target_fraction);
  EXPECT_EQ(policy.period, milliseconds(1000));
  EXPECT_EQ(policy.cold_epochs, 120u);
  EXPECT_EQ(policy.effective_refault_distance(), 120u);
  EXPECT_EQ(policy.effective_active_epochs(), 480u);
  EXPECT_DOUBLE_EQ(policy.promotion_budget, 0.002);
  EXPECT_EQ(policy.max_rate, uint64_t{64} << 20);
  EXPECT_EQ(policy.codec, Codec::kLz4);
  EXPECT_EQ(policy.effective_pool_limit(uint64_t{256} << 20), uint64_t{64} << 20);
  EXPECT_DOUBLE_EQ(policy.keep_threshold, 0.75);
  EXPECT_EQ(policy.dirty, DirtyTracking::kLog);
}

// Every key sets its own field and nothing else.
TEST(ReclaimPolicy, ParsesEveryKey) {
  const ReclaimPolicy policy = parsed(
      "target=64M,period=250ms,cold=3,refault=5,active=7,budget=1%,rate=8M,codec=zstd,"
      "pool=16M,keep=50%,dirty=ring");
  EXPECT_EQ(policy.target_bytes, uint64_t{64} << 20);
  EXPECT_FALSE(policy.target_fraction);
  EXPECT_EQ(policy.period, milliseconds(250));
  EXPECT_EQ(policy.cold_epochs, 3u);
  EXPECT_EQ(policy.refault_distance, 5u);
  EXPECT_EQ(policy.active_epochs, 7u);
  EXPECT_DOUBLE_EQ(policy.promotion_budget, 0.01);
  EXPECT_EQ(policy.max_rate, uint64_t{8} << 20);
  EXPECT_EQ(policy.codec, Codec::kZstd);
  EXPECT_EQ(policy.pool_limit, uint64_t{16} << 20);
  EXPECT_DOUBLE_EQ(policy.keep_threshold, 0.5);
  EXPECT_EQ(policy.dirty, DirtyTracking::kRing);
}

// The issue's example: target 64 MiB, one-second epochs, cold after 3.
TEST(ReclaimPolicy, ParsesTheIssueExample) {
  const ReclaimPolicy policy = parsed("target=64M,period=1s,cold=3");
  EXPECT_EQ(policy.target_for(uint64_t{256} << 20), uint64_t{64} << 20);
  EXPECT_EQ(policy.period, milliseconds(1000));
  EXPECT_EQ(policy.cold_epochs, 3u);
  EXPECT_EQ(policy.effective_refault_distance(), 3u);
  EXPECT_EQ(policy.effective_active_epochs(), 12u);
}

// Sizes take plain bytes and binary K, M, G suffixes in either case.
TEST(ReclaimPolicy, ParsesSizes) {
  EXPECT_EQ(parsed("target=4096").target_bytes, 4096u);
  EXPECT_EQ(parsed("target=64k").target_bytes, 64u << 10);
  EXPECT_EQ(parsed("target=64K").target_bytes, 64u << 10);
  EXPECT_EQ(parsed("target=3m").target_bytes, 3u << 20);
  EXPECT_EQ(parsed("target=2G").target_bytes, uint64_t{2} << 30);
  EXPECT_EQ(parsed("rate=100").max_rate, 100u);
  EXPECT_EQ(parsed("pool=1g").pool_limit, uint64_t{1} << 30);
}

// A target with '%' or '.' is a share of RAM, as a percentage or a fraction.
TEST(ReclaimPolicy, ParsesFractions) {
  const ReclaimPolicy percent = parsed("target=25%");
  EXPECT_FALSE(percent.target_bytes);
  EXPECT_DOUBLE_EQ(*percent.target_fraction, 0.25);
  EXPECT_EQ(percent.target_for(uint64_t{256} << 20), uint64_t{64} << 20);
  EXPECT_DOUBLE_EQ(*parsed("target=0.25").target_fraction, 0.25);
  EXPECT_DOUBLE_EQ(*parsed("target=100%").target_fraction, 1.0);
  EXPECT_DOUBLE_EQ(*parsed("target=12.5%").target_fraction, 0.125);
  EXPECT_DOUBLE_EQ(parsed("budget=0.2%").promotion_budget, 0.002);
  EXPECT_DOUBLE_EQ(parsed("budget=0.05").promotion_budget, 0.05);
  EXPECT_EQ(parsed("budget=off").promotion_budget, kNoPromotionBudget);
  EXPECT_NE(format_reclaim_policy(parsed("budget=off")).find(",budget=off,"), std::string::npos);
  EXPECT_DOUBLE_EQ(parsed("keep=1").keep_threshold, 1.0);
  EXPECT_DOUBLE_EQ(parsed("keep=0.6").keep_threshold, 0.6);
}

// Durations take ms or s.
TEST(ReclaimPolicy, ParsesDurations) {
  EXPECT_EQ(parsed("period=1ms").period, milliseconds(1));
  EXPECT_EQ(parsed("period=1500ms").period, milliseconds(1500));
  EXPECT_EQ(parsed("period=2s").period, milliseconds(2000));
  EXPECT_EQ(parsed("period=120s").period, milliseconds(120000));
}

// Each malformed item is rejected with the key and what was wrong (the text shown is the
// expected message part).
TEST(ReclaimPolicy, RejectsBadInputNamingKeyAndFault) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"speed=3", "unknown key 'speed'"},
      {"cold", "'cold': missing '='"},
      {"cold=3,period=1s,cold=4", "cold= given twice"},
      {"cold=", "cold=: empty value"},
      {"cold=3,,period=1s", "empty item"},
      {"cold=3,", "empty item"},
      {"cold=x", "cold=x: not a number of epochs"},
      {"cold=-1", "cold=-1: not a number of epochs"},
      {"cold=3.5", "cold=3.5: not a number of epochs"},
      {"cold=0", "cold=0: must be at least 1 epoch"},
      {"refault=0", "refault=0: must be at least 1 epoch"},
      {"active=0", "active=0: must be at least 1 epoch"},
      {"cold=99999999999", "cold=99999999999: not a number of epochs"},
      {"period=0s", "period=0s: must be at least 1 ms"},
      {"period=0ms", "period=0ms: must be at least 1 ms"},
      {"period=5", "period=5: not a duration"},
      {"period=1m", "period=1m: not a duration"},
      {"period=1.5s", "period=1.5s: not a duration"},
      {"target=0", "target=0: must be more than 0 bytes"},
      {"target=0%", "target=0%: must be above 0% and at most 100% of RAM"},
      {"target=0.0", "target=0.0: must be above 0% and at most 100% of RAM"},
      {"target=101%", "target=101%: must be above 0% and at most 100% of RAM"},
      {"target=1.5", "target=1.5: must be above 0% and at most 100% of RAM"},
      {"target=%", "target=%: not a share of RAM"},
      {"target=12X", "target=12X: not a size"},
      {"target=M", "target=M: not a size"},
      {"target=99999999999999G", "target=99999999999999G: too large"},
      {"keep=0", "keep=0: must be above 0 and at most 1"},
      {"keep=1.01", "keep=1.01: must be above 0 and at most 1"},
      {"keep=150%", "keep=150%: must be above 0 and at most 1"},
      {"keep=nan", "keep=nan: not a share"},
      {"keep=inf", "keep=inf: not a share"},
      {"budget=0%", "budget=0%: must be above 0 and at most 1"},
      {"budget=-1%", "budget=-1%: not a share"},
      {"rate=0", "rate=0: must be more than 0 bytes"},
      {"pool=0K", "pool=0K: must be more than 0 bytes"},
      {"codec=gzip", "codec=gzip: unknown codec (expected lz4 or zstd)"},
      {"dirty=foo", "dirty=foo: unknown dirty tracking (expected log or ring)"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string message = parse_error(text);
    EXPECT_NE(message.find(expected), std::string::npos) << text << " gave: " << message;
    EXPECT_EQ(message.rfind("reclaim policy: ", 0), 0u) << text << " gave: " << message;
  }
}

// The unknown-key error lists the keys that exist.
TEST(ReclaimPolicy, UnknownKeyListsTheKeys) {
  EXPECT_NE(parse_error("Cold=3").find("expected one of target, period, cold, refault, active, "
                                       "budget, rate, codec, pool, keep, dirty"),
            std::string::npos);
}

// The default policy is written with every key whose default does not depend on RAM.
TEST(ReclaimPolicy, FormatsTheDefault) {
  EXPECT_EQ(format_reclaim_policy(ReclaimPolicy{}),
            "period=1s,cold=120,refault=120,active=480,budget=0.2%,rate=64M,codec=lz4,keep=75%,"
            "dirty=log");
}

// Every key given is written back, sizes with their largest exact suffix.
TEST(ReclaimPolicy, FormatsEveryKey) {
  EXPECT_EQ(format_reclaim_policy(parsed("dirty=ring,keep=0.5,pool=16384K,codec=zstd,rate=1000,"
                                         "budget=0.05,active=7,refault=5,cold=3,period=1500ms,"
                                         "target=0.125")),
            "target=12.5%,period=1500ms,cold=3,refault=5,active=7,budget=5%,rate=1000,"
            "codec=zstd,pool=16M,keep=50%,dirty=ring");
  EXPECT_EQ(format_reclaim_policy(parsed("target=3G")).substr(0, 9), "target=3G");
}

// format(parse(x)) parses back to the same policy, and formats to the same text again.
TEST(ReclaimPolicy, FormatParseRoundTrips) {
  const std::string_view inputs[] = {
      "",
      "target=64M,period=1s,cold=3",
      "cold=2,budget=off",
      "target=25%",
      "target=0.3333,budget=0.123%,keep=0.7",
      "target=12345,rate=4097,pool=3K,period=7ms",
      "codec=zstd,dirty=ring,refault=9,active=1",
      "budget=100%,keep=1,target=1",
  };
  for (std::string_view input : inputs) {
    const ReclaimPolicy first = parsed(input);
    const std::string text = format_reclaim_policy(first);
    const ReclaimPolicy second = parsed(text);
    EXPECT_EQ(format_reclaim_policy(second), text) << input;
    EXPECT_EQ(second.target_bytes, first.target_bytes) << input;
    EXPECT_EQ(second.target_fraction, first.target_fraction) << input;
    EXPECT_EQ(second.period, first.period) << input;
    EXPECT_EQ(second.cold_epochs, first.cold_epochs) << input;
    EXPECT_EQ(second.effective_refault_distance(), first.effective_refault_distance()) << input;
    EXPECT_EQ(second.effective_active_epochs(), first.effective_active_epochs()) << input;
    EXPECT_EQ(second.promotion_budget, first.promotion_budget) << input;
    EXPECT_EQ(second.max_rate, first.max_rate) << input;
    EXPECT_EQ(second.codec, first.codec) << input;
    EXPECT_EQ(second.pool_limit, first.pool_limit) << input;
    EXPECT_EQ(second.keep_threshold, first.keep_threshold) << input;
    EXPECT_EQ(second.dirty, first.dirty) << input;
  }
}

// Parsed over a base, the text replaces only the keys it names; a target of either form
// replaces the base's target of the other form; a bad item still fails.
TEST(ReclaimPolicy, ParsesAChangeOverABase) {
  const ReclaimPolicy base = parsed("target=64M,cold=30,codec=zstd,dirty=ring,pool=8M");
  auto changed = parse_reclaim_policy("cold=5,period=250ms", base);
  ASSERT_TRUE(changed.ok()) << changed.error().message;
  EXPECT_EQ(changed->cold_epochs, 5u);
  EXPECT_EQ(changed->period, milliseconds(250));
  EXPECT_EQ(changed->target_bytes, uint64_t{64} << 20);
  EXPECT_EQ(changed->codec, Codec::kZstd);
  EXPECT_EQ(changed->dirty, DirtyTracking::kRing);
  EXPECT_EQ(changed->pool_limit, uint64_t{8} << 20);
  auto share = parse_reclaim_policy("target=25%", base);
  ASSERT_TRUE(share.ok());
  EXPECT_FALSE(share->target_bytes);
  EXPECT_EQ(share->target_fraction, 0.25);
  EXPECT_EQ(share->target_for(uint64_t{1} << 30), uint64_t{256} << 20);
  auto bytes = parse_reclaim_policy("target=1G", *share);
  ASSERT_TRUE(bytes.ok());
  EXPECT_FALSE(bytes->target_fraction);
  EXPECT_FALSE(parse_reclaim_policy("cold=0", base).ok());
  EXPECT_EQ(format_reclaim_policy(*parse_reclaim_policy("", base)), format_reclaim_policy(base));
}

// What the epochs use may change while the VM runs; the pool's codec, limit and keep
// threshold and the dirty tracking may not, and the error names the key and its value in force.
TEST(ReclaimPolicy, RunningVmRefusesFixedKeys) {
  const ReclaimPolicy running = parsed("codec=lz4,dirty=log,keep=75%");
  EXPECT_TRUE(check_policy_change(running, parsed("target=1G,period=5s,cold=2,refault=3,active=9,"
                                                  "budget=off,rate=1M"))
                  .ok());
  struct Case {
    const char* wanted;
    const char* says;
  };
  const Case cases[] = {
      {"codec=zstd",
       "reclaim policy: codec=zstd: the pool's codec is fixed while the VM runs (it is lz4)"},
      {"pool=16M",
       "reclaim policy: pool=16M: the pool's limit is fixed while the VM runs (it is RAM/4)"},
      {"keep=50%", "reclaim policy: keep=50%: the pool's keep threshold is fixed"},
      {"dirty=ring",
       "reclaim policy: dirty=ring: the dirty tracking is fixed while the VM runs (it is log)"},
  };
  for (const Case& c : cases) {
    auto checked = check_policy_change(running, parsed(c.wanted));
    ASSERT_FALSE(checked.ok()) << c.wanted;
    EXPECT_EQ(checked.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(checked.error().message.find(c.says), std::string::npos) << checked.error().message;
  }
}

}  // namespace
}  // namespace hvmm::vmm
