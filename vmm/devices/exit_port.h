// ExitPort: the debug-exit port (0xf4). A byte V written to it ends the VM with status V
// (QEMU's isa-debug-exit at iobase 0xf4 reports (V<<1)|1 instead); reads return all-ones.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>

#include "hvmm/vmm/devices/bus.h"

namespace hvmm::vmm {

class ExitPort final : public BusDevice {
 public:
  // `on_exit` receives the byte the guest wrote.
  explicit ExitPort(std::function<void(uint8_t)> on_exit) : on_exit_(std::move(on_exit)) {}

  // Nothing to read: all-ones, like an absent port.
  void bus_read(uint64_t /*offset*/, std::span<uint8_t> data) override {
    std::memset(data.data(), 0xff, data.size());
  }
  // The first byte written is the exit status.
  void bus_write(uint64_t /*offset*/, std::span<const uint8_t> data) override {
    if (!data.empty()) {
      on_exit_(data[0]);
    }
  }

 private:
  std::function<void(uint8_t)> on_exit_;
};

}  // namespace hvmm::vmm
