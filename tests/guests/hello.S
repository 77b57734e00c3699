/* hello: prints one line on the serial port and exits with status 0. The smallest PVH
   guest: also the bundled default kernel until the real one exists, and the benchmark's
   guest. */
#include "guest.h"

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  PRINT "Hello from the hvmm test guest\n"
  EXIT 0
