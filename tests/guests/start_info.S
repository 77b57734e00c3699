/* start_info: reads hvm_start_info (EBX) and prints its magic, version, command line,
   memory map (entry count and total RAM), and module 0 (size and first 8 bytes), then exits
   with status 42. */
#include "guest.h"

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  mov $stack_top, %esp
  mov %ebx, %ebp                /* ebp = start info for the whole run */
  cld
  PRINT "magic="
  mov 0(%ebp), %eax
  call print_hex32
  PRINT "\nversion="
  mov 4(%ebp), %eax
  call print_hex32
  PRINT "\ncmdline="
  mov 24(%ebp), %edi
  call print_cstr
  PRINT "\nmemmap entries="
  mov 48(%ebp), %eax
  call print_hex32
  /* Sum the sizes of the type-1 (RAM) entries into edi:ebx. */
  mov 40(%ebp), %esi
  mov 48(%ebp), %ecx
  xor %ebx, %ebx
  xor %edi, %edi
1:
  jecxz 3f
  cmpl $1, 16(%esi)
  jne 2f
  add 8(%esi), %ebx
  adc 12(%esi), %edi
2:
  add $24, %esi
  dec %ecx
  jmp 1b
3:
  PRINT "\nram="
  mov %edi, %eax
  call print_hex32
  mov %ebx, %eax
  call print_hex32
  PRINT "\nmodules="
  mov 12(%ebp), %eax
  call print_hex32
  cmpl $0, 12(%ebp)
  je 4f
  mov 16(%ebp), %ebx            /* ebx = module list */
  PRINT "\nmodule0 size="
  mov 8(%ebx), %eax
  call print_hex32
  PRINT " data="
  mov 0(%ebx), %esi
  mov $8, %ecx
  mov $COM1, %dx
  rep outsb
4:
  PRINT "\n"
  EXIT 42

  DEFINE_PRINT_HEX32

/* Print the NUL-terminated string at edi. Clobbers eax, ecx, edx, esi, edi. */
print_cstr:
  mov %edi, %esi
  xor %eax, %eax
  mov $-1, %ecx
  repne scasb
  not %ecx
  dec %ecx
  mov $COM1, %dx
  rep outsb
  ret


  .section .bss
  .balign 16
  .skip 4096
stack_top:
