// The 16550A UART model.
#include "hvmm/vmm/devices/serial/uart.h"

namespace hvmm::vmm {
namespace {

constexpr uint8_t kIerReceivedData = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIirNone = 0xc1;      // FIFOs enabled, no interrupt pending
constexpr uint8_t kIirThrEmpty = 0xc2;  // THR empty
constexpr uint8_t kIirReceived = 0xc4;  // received data available
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x60;  // THRE | TEMT
constexpr uint8_t kMsrIdle = 0xb0;      // DCD | DSR | CTS

}  // namespace

// Read a register under the lock, then update the IRQ (reads can clear interrupts).
uint8_t Uart16550::read(uint16_t offset) {
  std::lock_guard guard(lock_);
  uint8_t value = read_locked(offset);
  update_irq();
  return value;
}

// Write a register under the lock, then update the IRQ.
void Uart16550::write(uint16_t offset, uint8_t value) {
  std::lock_guard guard(lock_);
  write_locked(offset, value);
  update_irq();
}

// One register read per byte of the access, from `offset` up.
void Uart16550::bus_read(uint64_t offset, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < 8 ? read(static_cast<uint16_t>(offset + i)) : 0xff;
  }
}

// One register write per byte of the access, from `offset` up.
void Uart16550::bus_write(uint64_t offset, std::span<const uint8_t> data) {
  for (size_t i = 0; i < data.size() && offset + i < 8; ++i) {
    write(static_cast<uint16_t>(offset + i), data[i]);
  }
}

// Append host input and raise the received-data interrupt if enabled.
void Uart16550::push_input(std::span<const uint8_t> bytes) {
  std::lock_guard guard(lock_);
  input_.insert(input_.end(), bytes.begin(), bytes.end());
  update_irq();
}

// Register reads, DLAB-aware.
uint8_t Uart16550::read_locked(uint16_t offset) {
  switch (offset) {
    case 0:
      if (dlab()) {
        return divisor_low_;
      }
      if (input_.empty()) {
        return 0;
      } else {
        uint8_t byte = input_.front();
        input_.pop_front();
        return byte;
      }
    case 1:
      return dlab() ? divisor_high_ : ier_;
    case 2:
      return interrupt_identification();
    case 3:
      return lcr_;
    case 4:
      return mcr_;
    case 5:
      return kLsrThrEmpty | (input_.empty() ? 0 : kLsrDataReady);
    case 6:
      return kMsrIdle;
    default:
      return scratch_;
  }
}

// Register writes, DLAB-aware; THR bytes go straight to the output.
void Uart16550::write_locked(uint16_t offset, uint8_t value) {
  switch (offset) {
    case 0:
      if (dlab()) {
        divisor_low_ = value;
      } else {
        output_(value);
        thr_empty_pending_ = true;
      }
      break;
    case 1:
      if (dlab()) {
        divisor_high_ = value;
      } else {
        if ((value & kIerThrEmpty) != 0 && (ier_ & kIerThrEmpty) == 0) {
          thr_empty_pending_ = true;
        }
        ier_ = value & 0x0f;
      }
      break;
    case 3:
      lcr_ = value;
      break;
    case 4:
      mcr_ = value & 0x1f;
      break;
    case 7:
      scratch_ = value;
      break;
    default:  // FCR (FIFOs always on), LSR and MSR are read-only
      break;
  }
}

// IIR: received data first, then THR empty (which reading IIR acknowledges).
uint8_t Uart16550::interrupt_identification() {
  if ((ier_ & kIerReceivedData) != 0 && !input_.empty()) {
    return kIirReceived;
  }
  if ((ier_ & kIerThrEmpty) != 0 && thr_empty_pending_) {
    thr_empty_pending_ = false;
    return kIirThrEmpty;
  }
  return kIirNone;
}

// The line is high while an enabled interrupt is pending.
void Uart16550::update_irq() {
  bool level = ((ier_ & kIerReceivedData) != 0 && !input_.empty()) ||
               ((ier_ & kIerThrEmpty) != 0 && thr_empty_pending_);
  if (level != irq_level_) {
    irq_level_ = level;
    irq_(level);
  }
}

}  // namespace hvmm::vmm
