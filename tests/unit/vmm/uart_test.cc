// Tests of the 16550A UART model: output, status registers, divisor latch, input, IRQs.
#include "hvmm/vmm/devices/serial/uart.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hvmm::vmm {
namespace {

// A UART wired to a string and a record of IRQ levels.
struct UartFixture : ::testing::Test {
  std::string output;
  std::vector<bool> irq_levels;
  Uart16550 uart{[this](uint8_t byte) { output += static_cast<char>(byte); },
                 [this](bool level) { irq_levels.push_back(level); }};
};

// Bytes written to THR come out in order.
TEST_F(UartFixture, TransmitsBytes) {
  for (char c : std::string("hi\n")) {
    uart.write(0, static_cast<uint8_t>(c));
  }
  EXPECT_EQ(output, "hi\n");
}

// Idle registers read as a 16550A with an empty transmitter.
TEST_F(UartFixture, IdleRegisterValues) {
  EXPECT_EQ(uart.read(5), 0x60);  // LSR: THRE | TEMT
  EXPECT_EQ(uart.read(2), 0xc1);  // IIR: FIFOs, no interrupt
  EXPECT_EQ(uart.read(4), 0x08);  // MCR: OUT2
  EXPECT_EQ(uart.read(6), 0xb0);  // MSR: DCD | DSR | CTS
}

// With DLAB set, offsets 0 and 1 are the divisor latch and nothing is transmitted.
TEST_F(UartFixture, DivisorLatch) {
  uart.write(3, 0x80);
  uart.write(0, 0x01);
  uart.write(1, 0x00);
  EXPECT_EQ(uart.read(0), 0x01);
  EXPECT_EQ(output, "");
  uart.write(3, 0x03);
  EXPECT_EQ(uart.read(1), 0x00);  // IER again
}

// Input is readable through RBR with LSR.DR set until drained.
TEST_F(UartFixture, ReceivesInput) {
  uart.push_input(std::vector<uint8_t>{'o', 'k'});
  EXPECT_EQ(uart.read(5) & 0x01, 0x01);
  EXPECT_EQ(uart.read(0), 'o');
  EXPECT_EQ(uart.read(0), 'k');
  EXPECT_EQ(uart.read(5) & 0x01, 0x00);
}

// The received-data interrupt rises with input when enabled and falls when drained.
TEST_F(UartFixture, ReceivedDataInterrupt) {
  uart.write(1, 0x01);
  uart.push_input(std::vector<uint8_t>{'x'});
  ASSERT_EQ(irq_levels, (std::vector<bool>{true}));
  EXPECT_EQ(uart.read(2), 0xc4);
  EXPECT_EQ(uart.read(0), 'x');
  EXPECT_EQ(irq_levels, (std::vector<bool>{true, false}));
}

// Enabling the THR-empty interrupt raises it; reading IIR acknowledges it.
TEST_F(UartFixture, ThrEmptyInterrupt) {
  uart.write(1, 0x02);
  ASSERT_EQ(irq_levels, (std::vector<bool>{true}));
  EXPECT_EQ(uart.read(2), 0xc2);
  EXPECT_EQ(irq_levels, (std::vector<bool>{true, false}));
  EXPECT_EQ(uart.read(2), 0xc1);
}

}  // namespace
}  // namespace hvmm::vmm
