/* smp: the boot CPU starts every AP with INIT/SIPI through the x2APIC ICR (MSR 0x830), one
   at a time; each AP enters a real-mode trampoline copied to 0x8000, switches to protected
   mode, prints its APIC id (CPUID leaf 1, checked against leaf 0xB) and parks. The CPU count
   is the first decimal digit of the command line. Exits 0 when all report in, 3 when an AP
   does not start. */
#include "guest.h"

#define TRAMPOLINE 0x8000
#define IA32_APIC_BASE 0x1b
#define X2APIC_ICR 0x830
#define ICR_INIT 0x4500
#define ICR_STARTUP (0x4600 | (TRAMPOLINE >> 12))
/* How long the boot CPU waits for each AP, in `pause` loops: about 0.1 s on hardware. An AP
   needs only a few thousand instructions, but when vCPUs outnumber host CPUs (4 vCPUs on 1-2
   CPUs, or under emulation) it runs only once the scheduler preempts the spinning boot CPU, which
   300000 loops did not always outlast. */
#define WAIT_SPINS 3000000

PVH_NOTE pvh_start

  .code32
  .text
  .globl pvh_start
pvh_start:
  mov $stack_top, %esp
  cld
  /* ebp = CPU count from the first digit of the command line (1 if none). */
  mov 24(%ebx), %esi
  mov $1, %ebp
1:
  movzbl (%esi), %eax
  inc %esi
  test %eax, %eax
  jz 2f
  sub $'0', %eax
  cmp $9, %eax
  ja 1b
  mov %eax, %ebp
2:
  PRINT "bsp up, starting APs\n"
  /* Copy the trampoline below 1 MiB and switch the boot CPU's APIC to x2APIC mode. */
  mov $trampoline, %esi
  mov $TRAMPOLINE, %edi
  mov $(trampoline_end - trampoline), %ecx
  rep movsb
  mov $IA32_APIC_BASE, %ecx
  rdmsr
  or $0xc00, %eax
  wrmsr
  mov $1, %ebx                  /* ebx = next AP id */
3:
  cmp %ebp, %ebx
  jae 6f
  mov $X2APIC_ICR, %ecx
  mov %ebx, %edx
  mov $ICR_INIT, %eax
  wrmsr
  mov $ICR_STARTUP, %eax
  wrmsr
  mov $WAIT_SPINS, %ecx
4:
  cmp %ebx, ap_count
  je 5f
  pause
  loop 4b
  PRINT "an AP did not start\n"
  EXIT 3
5:
  inc %ebx
  jmp 3b
6:
  PRINT "all cpus up\n"
  EXIT 0

/* The AP's protected-mode entry: flat segments, own stack, report, park. */
ap_start32:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $1, %eax
  cpuid
  shr $24, %ebx
  mov %ebx, %ebp                /* ebp = initial APIC id (CPUID leaf 1) */
  mov $0xb, %eax
  xor %ecx, %ecx
  cpuid
  mov %edx, %edi                /* edi = x2APIC id (CPUID leaf 0xB) */
  mov %ebp, %eax
  shl $8, %eax
  mov $ap_stacks_top, %esp
  sub %eax, %esp
  PRINT "cpu "
  mov %ebp, %eax
  add $'0', %al
  mov $COM1, %dx
  out %al, %dx
  cmp %ebp, %edi
  je 7f
  PRINT " (leaf 0xb disagrees)"
7:
  PRINT " up\n"
  lock incl ap_count
8:
  cli
  hlt
  jmp 8b

/* The 16-bit trampoline, copied to TRAMPOLINE; it may only use addresses below 64 KiB. */
  .code16
trampoline:
  cli
  xor %ax, %ax
  mov %ax, %ds
  lgdtl (tramp_gdtr - trampoline + TRAMPOLINE)
  mov %cr0, %eax
  or $1, %eax
  mov %eax, %cr0
  ljmpl $0x08, $ap_start32
  .balign 8
tramp_gdtr:
  .word gdt_end - gdt - 1
  .long gdt
trampoline_end:
  .code32

  .section .rodata
  .balign 8
gdt:
  .quad 0
  .quad 0x00cf9b000000ffff      /* 0x08: flat 32-bit code */
  .quad 0x00cf93000000ffff      /* 0x10: flat data */
gdt_end:

  .section .data
  .balign 4
ap_count: .long 0

  .section .bss
  .balign 16
  .skip 4096
stack_top:
  .skip 256 * 16
ap_stacks_top:
