// The virtio fuzz bodies (see virtio_fuzz_check.h).
#include "virtio_fuzz_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "hvmm/vmm/devices/balloon/balloon_device.h"
#include "hvmm/vmm/devices/virtio/queue.h"
#include "virtio_harness.h"

namespace hvmm::vmm::fuzz {
namespace {

using testing::GuardedGuestMemory;

constexpr uint64_t kQueueRam = 64 << 10;
constexpr uint64_t kBalloonRam = 256 << 10;
// The balloon believes in RAM of its own (PFNs are numbers; it never touches those pages).
const std::vector<IpaRange> kBalloonPfnRam = {{Ipa(0), 1 << 20}, {Ipa(uint64_t{4} << 30), 1 << 20}};

// Reads little-endian fields off the front of the input; zeros once it runs out.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> input) : input_(input) {}
  template <typename T>
  T take() {
    T value{};
    const size_t n = std::min(sizeof(T), input_.size());
    if (n > 0) {
      std::memcpy(&value, input_.data(), n);
      input_ = input_.subspan(n);
    }
    return value;
  }
  std::span<const uint8_t> rest() const { return input_; }
  bool empty() const { return input_.empty(); }

 private:
  std::span<const uint8_t> input_;
};

// CheckingBackend verifies every run it is given.
class CheckingBackend final : public BalloonBackend {
 public:
  Result<void> inflate(std::span<const IpaRange> runs) override { return check(runs); }
  Result<void> deflate(std::span<const IpaRange> runs) override { return check(runs); }
  Result<void> report(std::span<const IpaRange> runs) override { return check(runs); }
  std::string problem;
  uint64_t calls = 0;

 private:
  Result<void> check(std::span<const IpaRange> runs) {
    ++calls;
    for (size_t i = 0; i < runs.size() && problem.empty(); ++i) {
      const IpaRange& run = runs[i];
      const bool inside = std::any_of(
          kBalloonPfnRam.begin(), kBalloonPfnRam.end(),
          [&](const IpaRange& r) { return run.start >= r.start && run.end() <= r.end(); });
      if (run.empty() || !run.start.is_aligned(kPageSize) || !is_aligned(run.size, kPageSize) ||
          !inside || (i > 0 && runs[i - 1].end() >= run.start)) {
        problem = fmt::format("backend given run {} (#{})", run, i);
      }
    }
    return Ok();
  }
};

// Count raises (nothing to check).
class NullInterrupt final : public virtio::VirtioInterrupt {
 public:
  void raise() override {}
};

}  // namespace

std::string check_virtqueue_input(std::span<const uint8_t> input) {
  Reader reader(input);
  const auto size = reader.take<uint16_t>();
  const auto desc = reader.take<uint16_t>();
  const auto avail = reader.take<uint16_t>();
  const auto used = reader.take<uint16_t>();
  const auto flags = reader.take<uint8_t>();
  const auto pops = reader.take<uint8_t>();
  reader.take<uint16_t>();  // reserved
  GuardedGuestMemory memory(kQueueRam);
  const auto ram = reader.rest().first(std::min<size_t>(reader.rest().size(), kQueueRam));
  if (!ram.empty()) {
    std::memcpy(memory.ram(), ram.data(), ram.size());
  }
  virtio::Virtqueue queue(0, 256);
  queue.set_size(size);
  queue.set_descriptor_table(Ipa(uint64_t{desc} * 16));
  queue.set_available_ring(Ipa(uint64_t{avail} * 2));
  queue.set_used_ring(Ipa(uint64_t{used} * 4));
  if (!queue.enable(memory, (flags & 1) != 0)) {
    return memory.guards_intact() ? "" : "enable wrote outside RAM";
  }
  for (unsigned i = 0; i < pops; ++i) {
    auto chain = queue.pop(memory);
    if (!chain || !*chain) {
      break;
    }
    if ((*chain)->buffers.size() > size || (*chain)->head >= size) {
      return fmt::format("chain {} of {} descriptors from a {}-entry queue", (*chain)->head,
                         (*chain)->buffers.size(), size);
    }
    for (const virtio::Buffer& buffer : (*chain)->buffers) {
      if (buffer.address.value() + buffer.length < buffer.address.value()) {
        return fmt::format("chain {} has a wrapping buffer at {}", (*chain)->head, buffer.address);
      }
    }
    if (!queue.push_used(memory, (*chain)->head, 0)) {
      break;
    }
  }
  return memory.guards_intact() ? "" : "the queue wrote outside RAM";
}

std::string check_balloon_input(std::span<const uint8_t> input) {
  GuardedGuestMemory memory(kBalloonRam);
  CheckingBackend backend;
  NullInterrupt interrupt;
  BalloonDevice balloon(backend, kBalloonPfnRam, BalloonOptions{0, true});
  virtio::MmioTransport transport("virtio-balloon@fuzz", balloon, memory, interrupt,
                                  [](const std::string&) {});
  testing::TestDriver driver(transport, memory);
  Reader reader(input);
  for (unsigned op = 0; op < 4096 && !reader.empty(); ++op) {
    const bool stuck = (transport.status() & virtio::kStatusNeedsReset) != 0;
    const uint64_t calls = backend.calls;
    switch (reader.take<uint8_t>() % 8) {
      case 0: {  // register or config write
        const uint64_t offset = reader.take<uint16_t>() % 0x120;
        driver.write32(offset, reader.take<uint32_t>());
        break;
      }
      case 1: {  // register or config read of some width
        const uint64_t offset = reader.take<uint16_t>() % 0x120;
        uint8_t data[8];
        transport.bus_read(offset, std::span<uint8_t>(data, 1u << (reader.take<uint8_t>() % 4)));
        break;
      }
      case 2: {  // guest memory write
        const uint64_t at = reader.take<uint16_t>() * uint64_t{4} % kBalloonRam;
        const auto value = reader.take<uint64_t>();
        std::memcpy(memory.ram() + at, &value, std::min<uint64_t>(8, kBalloonRam - at));
        break;
      }
      case 3:
        driver.notify(reader.take<uint8_t>() % 5);
        break;
      case 4:
        balloon.request_stats();
        break;
      case 5:
        balloon.set_target_pages(reader.take<uint16_t>());
        break;
      case 6: {  // a well-behaved bring-up with the features the input picks
        const uint64_t features = virtio::feature(virtio::kFeatureVersion1) |
                                  (reader.take<uint8_t>() & 0x27u) |
                                  virtio::feature(virtio::kFeatureIndirectDesc);
        if (driver.negotiate(features)) {
          for (unsigned q = 0; q < balloon_queues(features).count; ++q) {
            driver.setup_queue(q, testing::default_layout(q));
          }
          driver.driver_ok();
        }
        break;
      }
      default: {  // a raw byte-wide register write
        const uint8_t byte = reader.take<uint8_t>();
        transport.bus_write(reader.take<uint16_t>() % 0x120, {&byte, 1});
        break;
      }
    }
    if (stuck && (transport.status() & virtio::kStatusNeedsReset) != 0 && backend.calls != calls) {
      return "a device in NEEDS_RESET released pages";
    }
    if (!backend.problem.empty()) {
      return backend.problem;
    }
  }
  return memory.guards_intact() ? "" : "the balloon wrote outside RAM";
}

}  // namespace hvmm::vmm::fuzz
