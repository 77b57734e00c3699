/* release_watch: writes a marker into the RAM word at 2 MiB, prints "ready", then reads it
   until it reads zero, which happens once the host releases that page (punches it out of the
   memfd: KVM drops its translation through the host's MMU notifier, and the next access
   finds a fresh zero page). Then prints "released" and exits 0. */
#include "guest.h"

#define WATCHED 0x200000

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  movl $0x5a5a5a5a, WATCHED
  PRINT "ready\n"
1:
  mov WATCHED, %eax
  test %eax, %eax
  jnz 1b
  PRINT "released\n"
  EXIT 0
