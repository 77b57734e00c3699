/* triple_fault: loads an empty IDT and executes ud2: #UD cannot be delivered, nor the #GP
   and #DF that follow, so the CPU shuts down (a triple fault). Marker values in eax, ecx and
   edi make the register dump recognizable. */
#include "guest.h"

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  PRINT "about to triple fault\n"
  lidt empty_idt
  mov $0xdeadbeef, %eax
  mov $0xc0ffee00, %ecx
  mov $0x0badf00d, %edi
  ud2
  EXIT 0

  .section .rodata
  .balign 8
empty_idt:
  .word 0
  .long 0
