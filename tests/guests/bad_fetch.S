/* bad_fetch: jumps to an IPA nothing backs. An instruction cannot be fetched from MMIO, so
   KVM reports an internal (emulation) error and the VMM must stop the VM with a register
   dump. */
#include "guest.h"

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  PRINT "jumping to unbacked memory\n"
  mov $0xc0000000, %eax  /* below the virtio-mmio windows */
  jmp *%eax
