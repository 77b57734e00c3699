/* unmap_watch: prints "ready", then reads the RAM word at 2 MiB until it reads all-ones,
   which happens once the host removes that page from the guest's stage-2 map (the memslot
   goes away, the access becomes an unbacked-IPA fault). Then prints "gone" and exits 0. */
#include "guest.h"

#define WATCHED 0x200000

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  PRINT "ready\n"
1:
  mov WATCHED, %eax
  cmp $0xffffffff, %eax
  jne 1b
  PRINT "gone\n"
  EXIT 0
