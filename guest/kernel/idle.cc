// The idle loop of the boot CPU: balloon_service() between interrupts (device interrupts and
// the 100 Hz tick wake the halt), until the time given by `idle=` runs out or the console
// receives a byte.
#include "hvmm/guest/idle.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/time.h"
#include "hvmm/guest/virtio_balloon.h"

namespace hvmm::guest {

// Loop until the deadline or a console byte.
void idle_serve_devices() {
  uint64_t seconds = cmdline_get_number("idle", 0);
  if (seconds == 0)
    return;
  printk("idle: serving devices for up to %lu s (a byte on the console ends it)\n", seconds);
  const uint64_t start = arch::rdtsc();
  const uint64_t limit = seconds * tsc_hz();
  const char* why = "time is up";
  while (arch::rdtsc() - start < limit) {
    balloon_service();
    uint8_t byte;
    if (console_read_byte(&byte)) {
      why = "console input";
      break;
    }
    asm volatile("sti; hlt; cli" : : : "memory");
  }
  printk("idle: done (%s) after %lu ms\n", why, tsc_to_us(arch::rdtsc() - start) / 1000);
}

}  // namespace hvmm::guest
