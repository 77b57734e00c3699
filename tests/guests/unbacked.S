/* unbacked: reads and writes IPAs in the MMIO hole that nothing backs. Each access must be
   answered (reads all-ones, writes dropped) and logged, and the guest keeps running. */
#include "guest.h"

#define UNBACKED 0xc0000000  /* below the virtio-mmio windows (0xd0000000 up) */

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  mov $stack_top, %esp
  PRINT "read "
  mov UNBACKED, %eax
  call print_hex32
  movl $0x12345678, UNBACKED + 0x10
  PRINT "\nafter write "
  mov UNBACKED + 0x10, %eax
  call print_hex32
  PRINT "\nstill running\n"
  EXIT 0

  DEFINE_PRINT_HEX32


  .section .bss
  .balign 16
  .skip 1024
stack_top:
