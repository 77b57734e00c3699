// The daemon's pure checks (daemon/server): VM names, IPA ranges and stream buffers against
// simple models on random inputs, and the rewriting of VmOptions messages into VmSpec fields.
#include <gtest/gtest.h>

#include <cctype>
#include <random>

#include "hvmm/daemon/server/peer_credentials.h"
#include "hvmm/daemon/server/request_check.h"
#include "hvmm/daemon/server/spec_check.h"

namespace hvmm::daemon {
namespace {

// Random names over an alphabet with every kind of character: accepted exactly when the
// proto's rule (a regular expression here) says so, and the error names the field.
TEST(ServerChecks, VmNamesAgainstTheRule) {
  // The rule as the proto words it: 1..63 of [A-Za-z0-9._-], the first a letter or digit.
  auto rule = [](const std::string& name) {
    const std::string allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    return !name.empty() && name.size() <= 63 && allowed.find(name[0]) < 62 &&
           name.find_first_not_of(allowed) == std::string::npos;
  };
  const std::string alphabet = "aZ09._- /\x01\xff";
  std::mt19937 random(7);
  for (int i = 0; i < 20000; ++i) {
    std::string name(random() % 70, 'x');
    for (char& c : name) {
      c = alphabet[random() % alphabet.size()];
    }
    auto checked = check_new_vm_name("name", name);
    EXPECT_EQ(checked.ok(), rule(name)) << quote_for_message(name);
    if (!checked) {
      EXPECT_EQ(checked.error().message.rfind("name: ", 0), 0u) << checked.error().message;
      EXPECT_EQ(checked.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

// Messages quote at most 64 printable bytes.
TEST(ServerChecks, QuotedTextIsShortAndPrintable) {
  EXPECT_EQ(quote_for_message("ab\ncd"), "'ab?cd'");
  EXPECT_EQ(quote_for_message(std::string(100, 'x')), "'" + std::string(64, 'x') + "...'");
}

// Ranges: accepted exactly when page aligned, not overflowing and (when required) not empty;
// an empty optional range must be all zero.
TEST(ServerChecks, IpaRangesAgainstAModel) {
  std::mt19937_64 random(11);
  const uint64_t interesting[] = {
      0, 1, 0x800, 0x1000, 0x1001, 0x200000, UINT64_MAX - 0xfff, UINT64_MAX - 0x1fff, UINT64_MAX};
  auto pick = [&] {
    return random() % 2 == 0
               ? interesting[random() % std::size(interesting)]
               : (random() >> (random() % 64)) & ~uint64_t{random() % 2 == 0 ? 0xfffu : 0};
  };
  for (int i = 0; i < 50000; ++i) {
    hvmm::v1::IpaRange range;
    range.set_start(pick());
    range.set_size(pick());
    for (RangeRule rule : {RangeRule::kRequired, RangeRule::kOptional}) {
      bool empty = range.size() == 0;
      bool model = empty ? (rule == RangeRule::kOptional && range.start() == 0)
                         : range.start() % 4096 == 0 && range.size() % 4096 == 0 &&
                               range.start() <= UINT64_MAX - range.size();
      auto checked = check_ipa_range("range", range, rule);
      ASSERT_EQ(checked.ok(), model) << std::hex << range.start() << " +" << range.size();
      if (!checked) {
        EXPECT_EQ(checked.error().message.rfind("range: ", 0), 0u);
      }
    }
  }
}

TEST(ServerChecks, StreamBuffers) {
  for (uint32_t buffer = 0; buffer < 70000; buffer += 1 + buffer / 7) {
    bool model = buffer == 0 || (buffer >= 16 && buffer <= 65536);
    EXPECT_EQ(check_stream_buffer("buffer", buffer).ok(), model) << buffer;
  }
  EXPECT_EQ(stream_buffer(0), kDefaultStreamBuffer);
  EXPECT_EQ(stream_buffer(16), 16u);
}

// VmOptions messages become VmSpec fields, whether they name the field (the contract) or,
// meanwhile, the `hvmm run` flag.
TEST(ServerChecks, SpecFieldMessages) {
  const std::pair<std::string, std::string> cases[] = {
      {"memory_bytes: must be between 2 MiB and 256 GiB (got 4096)",
       "spec.memory_bytes: must be between 2 MiB and 256 GiB (got 4096)"},
      {"balloon_target_bytes: too big", "spec.balloon.initial_target_bytes: too big"},
      {"--memory 4096: must be between 2M and 256G",
       "spec.memory_bytes 4096: must be between 2M and 256G"},
      {"--balloon-stats-interval 9: bad", "spec.balloon.stats_interval_seconds 9: bad"},
      {"--balloon 1G: too big", "spec.balloon.initial_target_bytes 1G: too big"},
      {"cannot open --kernel '/x': No such file",
       "spec.kernel: cannot open kernel '/x': No such file"},
      {"spec.vcpus: already named", "spec.vcpus: already named"},
      {"something else", "spec: something else"},
  };
  for (const auto& [message, expected] : cases) {
    EXPECT_EQ(spec_field_message(message), expected);
  }
}

// Requests checked against what the daemon knows of the VM.
TEST(ServerChecks, RequestsAgainstTheVm) {
  hvmm::v1::VmSpec spec;
  spec.set_memory_bytes(uint64_t{64} << 20);
  VmFacts facts = vm_facts("vm", spec);
  EXPECT_TRUE(facts.control_channel) << "the daemon's default";
  EXPECT_TRUE(facts.balloon);
  EXPECT_FALSE(facts.reclaim);
  hvmm::v1::SetBalloonTargetRequest balloon;
  balloon.set_target_bytes((uint64_t{64} << 20) - 1);
  EXPECT_TRUE(check_request(balloon, facts).ok());
  balloon.set_target_bytes(uint64_t{64} << 20);
  EXPECT_EQ(check_request(balloon, facts).error().code, ErrorCode::kInvalidArgument);
  facts.balloon = false;
  balloon.set_target_bytes(0);
  EXPECT_EQ(check_request(balloon, facts).error().code, ErrorCode::kFailedPrecondition);
  hvmm::v1::ReclaimRequest reclaim;
  reclaim.set_epochs(1);
  EXPECT_EQ(check_request(reclaim, facts).error().code, ErrorCode::kFailedPrecondition);
  facts.reclaim = true;
  EXPECT_TRUE(check_request(reclaim, facts).ok());
  reclaim.set_set_policy("cold=3");
  EXPECT_TRUE(check_request(reclaim, facts).ok());
}

// Root and members of the socket's group are served, nobody else.
TEST(ServerChecks, PeerCredentials) {
  EXPECT_TRUE(peer_allowed({1, 0, 0, {}}, 100));
  EXPECT_TRUE(peer_allowed({1, 1000, 100, {}}, 100));
  EXPECT_TRUE(peer_allowed({1, 1000, 1000, {5, 100}}, 100));
  EXPECT_FALSE(peer_allowed({1, 1000, 1000, {5, 101}}, 100));
  EXPECT_FALSE(peer_allowed({1, 65534, 65534, {}}, 0));
}

}  // namespace
}  // namespace hvmm::daemon
