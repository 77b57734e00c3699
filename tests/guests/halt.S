/* halt: prints one line, then halts forever with interrupts off. Used to check that the VMM
   stops blocked vCPUs (and parked APs) promptly on SIGINT/SIGTERM, without busy waiting. */
#include "guest.h"

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  PRINT "halting\n"
  cli
1:
  hlt
  jmp 1b
