/* echo: polls COM1 for input and echoes every byte until it reads 'q', then prints "bye"
   and exits with status 7. Checks the console input path (stdin on a terminal). */
#include "guest.h"

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  PRINT "echo ready\n"
1:
  mov $(COM1 + 5), %dx          /* LSR */
  in %dx, %al
  test $1, %al                  /* DR: a byte is waiting */
  jz 1b
  mov $COM1, %dx
  in %dx, %al
  out %al, %dx
  cmp $'q', %al
  jne 1b
  PRINT "\nbye\n"
  EXIT 7
