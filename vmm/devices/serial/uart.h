// Uart16550: a 16550A UART as the guest sees it on COM1 (0x3f8, IRQ 4).
//
// Output: every byte written to THR goes to the output sink at once (the transmitter is
// always empty, so LSR reads THRE|TEMT). Input: bytes pushed by the host are queued and read
// through RBR with LSR.DR set while any remain. Interrupts: received-data and THR-empty,
// each enabled by IER, drive the IRQ line through the irq sink. Thread-safe: vCPU threads
// access registers while the console thread pushes input.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "hvmm/vmm/devices/bus.h"

namespace hvmm::vmm {

inline constexpr uint16_t kCom1Base = 0x3f8;
inline constexpr uint32_t kCom1Irq = 4;

class Uart16550 final : public BusDevice {
 public:
  using OutputSink = std::function<void(uint8_t)>;
  using IrqSink = std::function<void(bool level)>;

  Uart16550(OutputSink output, IrqSink irq) : output_(std::move(output)), irq_(std::move(irq)) {}

  // Guest read of register `offset` (0..7).
  uint8_t read(uint16_t offset);
  // Guest write of `value` to register `offset` (0..7).
  void write(uint16_t offset, uint8_t value);
  // Bus access at `offset`: each byte is one register access (a 16-bit OUT to THR writes
  // THR, then IER).
  void bus_read(uint64_t offset, std::span<uint8_t> data) override;
  void bus_write(uint64_t offset, std::span<const uint8_t> data) override;
  // Queue host input for the guest to read.
  void push_input(std::span<const uint8_t> bytes);

 private:
  uint8_t read_locked(uint16_t offset);
  void write_locked(uint16_t offset, uint8_t value);
  uint8_t interrupt_identification();
  // Recompute the IRQ level and tell the sink when it changed.
  void update_irq();
  bool dlab() const { return (lcr_ & 0x80) != 0; }

  OutputSink output_;
  IrqSink irq_;
  std::mutex lock_;
  std::deque<uint8_t> input_;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0x03;
  uint8_t mcr_ = 0x08;
  uint8_t scratch_ = 0;
  uint8_t divisor_low_ = 0x0c;  // 9600 baud
  uint8_t divisor_high_ = 0;
  bool thr_empty_pending_ = false;
  bool irq_level_ = false;
};

}  // namespace hvmm::vmm
