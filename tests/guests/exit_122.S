/* exit_122: prints one line and writes 122 to port 0xf4, the value of hvmm's own "triple
   fault" status. The VM must end with status 122 and hvmm must not claim it ended the VM:
   a guest's own exit prints nothing on stderr, whatever the byte. */
#include "guest.h"

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  PRINT "exiting with 122\n"
  EXIT 122
