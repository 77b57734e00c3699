// Unit tests of the control channel's host side: tagged requests delivered into posted
// buffers, answered on the response queue, timeouts, and malformed responses.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "hvmm/vmm/devices/control/control_channel.h"
#include "virtio_harness.h"

namespace hvmm::vmm {
namespace {

using testing::CountingInterrupt;
using testing::default_layout;
using testing::GuardedGuestMemory;
using testing::TestDriver;
using virtio::Buffer;

constexpr uint64_t kRequestBuffer = 0x40000;
constexpr uint64_t kResponseBuffer = 0x41000;

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(driver.negotiate(virtio::feature(virtio::kFeatureVersion1)));
    driver.setup_queue(control::kRequestQueue, default_layout(0));
    driver.setup_queue(control::kResponseQueue, default_layout(1));
    driver.driver_ok();
  }
  // Post one writable request buffer.
  void post_request_buffer() {
    driver.add_chain(control::kRequestQueue,
                     {Buffer{Ipa(kRequestBuffer), sizeof(control::ControlRequest), true}});
    driver.notify(control::kRequestQueue);
  }
  // Wait (a bounded spin) until the device has returned `count` request buffers.
  bool wait_for_requests(uint16_t count) {
    for (int i = 0; i < 2000 && driver.used_index(control::kRequestQueue) < count; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return driver.used_index(control::kRequestQueue) >= count;
  }
  // Send `response` on the response queue.
  void respond(const control::ControlResponse& response) {
    std::memcpy(memory.ram() + kResponseBuffer, &response, sizeof(response));
    driver.add_chain(control::kResponseQueue,
                     {Buffer{Ipa(kResponseBuffer), sizeof(response), false}});
    driver.notify(control::kResponseQueue);
  }
  // The answer a guest would give to the request in the request buffer.
  control::ControlResponse answer_to_posted() {
    control::ControlRequest request;
    std::memcpy(&request, memory.ram() + kRequestBuffer, sizeof(request));
    control::ControlResponse response{};
    response.magic = control::kResponseMagic;
    response.version = control::kControlVersion;
    response.op = request.op;
    response.tag = request.tag;
    response.status = control::Status::kOk;
    response.latency_ns = 1234;
    return response;
  }
  static std::chrono::steady_clock::time_point in(std::chrono::milliseconds ms) {
    return std::chrono::steady_clock::now() + ms;
  }

  GuardedGuestMemory memory{1 << 20};
  CountingInterrupt irq;
  std::vector<std::string> logs;
  ControlChannel control;
  virtio::MmioTransport transport{"hvmm-control@test", control, memory, irq,
                                  [this](const std::string& line) { logs.push_back(line); }};
  TestDriver driver{transport, memory};
};

// The device id and the config space (the protocol version) are the header's.
TEST_F(ControlTest, IdentifiesItself) {
  EXPECT_EQ(driver.read32(virtio::kRegDeviceId), control::kControlDeviceId);
  EXPECT_EQ(driver.read32(virtio::kRegConfig), control::kControlVersion);
}

// A call from another thread is written into the posted buffer with magic, version and a
// tag, and returns the response carrying that tag.
TEST_F(ControlTest, CallIsDeliveredAndAnswered) {
  post_request_buffer();
  control::ControlRequest request{};
  request.op = control::Op::kMemStats;
  auto answer = std::async(std::launch::async,
                           [&] { return control.call(request, in(std::chrono::seconds(10))); });
  ASSERT_TRUE(wait_for_requests(1));
  EXPECT_EQ(driver.used(control::kRequestQueue, 0).second, sizeof(control::ControlRequest));
  control::ControlResponse response = answer_to_posted();
  EXPECT_EQ(memory.load<uint32_t>(kRequestBuffer), control::kRequestMagic);
  EXPECT_NE(response.tag, 0u);
  response.result.mem_stats.total = 777;
  respond(response);
  auto result = answer.get();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->tag, response.tag);
  EXPECT_EQ(result->result.mem_stats.total, 777u);
  EXPECT_EQ(result->latency_ns, 1234u);
  EXPECT_EQ(driver.used_index(control::kResponseQueue), 1);
  EXPECT_EQ(control.answered(), 1u);
  EXPECT_FALSE(driver.needs_reset());
}

// With no buffer posted the call times out with an error that says the guest never took it.
TEST_F(ControlTest, CallTimesOutWithoutABuffer) {
  control::ControlRequest request{};
  request.op = control::Op::kPing;
  auto result = control.call(request, in(std::chrono::milliseconds(20)));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("never took it"), std::string::npos)
      << result.error().message;
}

// A response for a request whose caller gave up is dropped, not a protocol error.
TEST_F(ControlTest, LateResponseIsDropped) {
  post_request_buffer();
  control::ControlRequest request{};
  request.op = control::Op::kPing;
  auto result = control.call(request, in(std::chrono::milliseconds(20)));
  ASSERT_FALSE(result.ok());
  respond(answer_to_posted());
  EXPECT_FALSE(driver.needs_reset());
  EXPECT_EQ(control.late_responses(), 1u);
}

// A response with a bad magic puts the device in NEEDS_RESET.
TEST_F(ControlTest, BadMagicNeedsReset) {
  control::ControlResponse response{};
  response.magic = 0x12345678;
  response.version = control::kControlVersion;
  respond(response);
  EXPECT_TRUE(driver.needs_reset());
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("magic"), std::string::npos) << logs[0];
  EXPECT_TRUE(memory.guards_intact());
}

// A response whose tag no request has puts the device in NEEDS_RESET.
TEST_F(ControlTest, UnknownTagNeedsReset) {
  control::ControlResponse response{};
  response.magic = control::kResponseMagic;
  response.version = control::kControlVersion;
  response.tag = 99;
  respond(response);
  EXPECT_TRUE(driver.needs_reset());
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("tag 99"), std::string::npos) << logs[0];
}

// A request buffer too small for a request is a malformed queue.
TEST_F(ControlTest, ShortRequestBufferNeedsReset) {
  driver.add_chain(control::kRequestQueue, {Buffer{Ipa(kRequestBuffer), 16, true}});
  driver.notify(control::kRequestQueue);
  EXPECT_TRUE(driver.needs_reset());
}

// A driver reset fails the call it had taken; shut_down fails the ones still waiting.
TEST_F(ControlTest, ResetAndShutdownFailWaitingCalls) {
  post_request_buffer();
  control::ControlRequest request{};
  request.op = control::Op::kPing;
  auto taken = std::async(std::launch::async,
                          [&] { return control.call(request, in(std::chrono::seconds(10))); });
  ASSERT_TRUE(wait_for_requests(1));
  driver.write32(virtio::kRegStatus, 0);
  auto reset_result = taken.get();
  ASSERT_FALSE(reset_result.ok());
  EXPECT_NE(reset_result.error().message.find("reset"), std::string::npos);
  auto waiting = std::async(std::launch::async,
                            [&] { return control.call(request, in(std::chrono::seconds(10))); });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  control.shut_down();
  EXPECT_FALSE(waiting.get().ok());
  EXPECT_FALSE(control.call(request, in(std::chrono::seconds(1))).ok());
}

}  // namespace
}  // namespace hvmm::vmm
