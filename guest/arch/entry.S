/* Interrupt, exception and system-call entry points. Every entry builds a TrapFrame
 * (include/hvmm/guest/arch/trap.h) on the kernel stack and calls a C++ dispatcher. */

#define PERCPU_KERNEL_RSP 8
#define PERCPU_RETURN_RSP 24
#define USER_DS (0x18 | 3)
#define USER_CS (0x20 | 3)

.macro SAVE_REGS
  pushq %rax
  pushq %rbx
  pushq %rcx
  pushq %rdx
  pushq %rsi
  pushq %rdi
  pushq %rbp
  pushq %r8
  pushq %r9
  pushq %r10
  pushq %r11
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
.endm

.macro RESTORE_REGS
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %r11
  popq %r10
  popq %r9
  popq %r8
  popq %rbp
  popq %rdi
  popq %rsi
  popq %rdx
  popq %rcx
  popq %rbx
  popq %rax
.endm

  .text
/* 256 stubs, 16 bytes apart: push a zero error code where the CPU pushes none, push the
 * vector, join the common path. */
  .balign 16
  .globl isr_stubs
isr_stubs:
  .set vec, 0
  .rept 256
  .balign 16
  .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
  .else
  pushq $0
  .endif
  pushq $vec
  jmp isr_common
  .set vec, vec + 1
  .endr

isr_common:
  SAVE_REGS
  cld
  movq %rsp, %rdi
  call trap_dispatch
  RESTORE_REGS
  addq $16, %rsp
  iretq

/* The `syscall` entry (LSTAR), alone in a page that every user address space maps at its
 * physical address, user-accessible and executable. It only raises #BP: the #BP gate uses
 * IST2, which always holds this CPU's ring-3 trap stack, and trap_dispatch recognises the
 * address and turns the frame into a system call. This works both where `syscall` enters
 * ring 0 as specified (int3 then runs at CPL0 and IST gives it a kernel stack) and on this
 * machine's PVM hypervisor, which jumps to LSTAR without leaving ring 3 for a guest that is
 * not PVM-aware (int3 then enters through the DPL-3 gate like any user exception). */
  .section .text.syscall, "ax"
  .balign 4096
  .globl syscall_entry, syscall_entry_page, syscall_entry_int3_next
syscall_entry_page:
syscall_entry:
  int3
syscall_entry_int3_next:
  ud2
  .balign 4096

  .text
/* uint64_t user_enter(uint64_t rip, uint64_t rsp, uint64_t a0, uint64_t a1, uint64_t a2):
 * save the callee-saved registers, remember this stack as the return point, make the stack
 * below it the ring-3 trap stack, and iretq to ring 3 with a0..a2 in RDI, RSI, RDX.
 * Returns the value passed to user_return(). */
  .globl user_enter
user_enter:
  pushq %rbx
  pushq %rbp
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, %gs:PERCPU_RETURN_RSP
  movq %rdi, %r12
  movq %rsi, %r13
  movq %rdx, %r14
  movq %rcx, %r15
  movq %r8, %rbx
  leaq -64(%rsp), %rax
  andq $-16, %rax
  movq %rax, %gs:PERCPU_KERNEL_RSP
  movq %rax, %rdi
  subq $8, %rsp
  call user_set_trap_stack
  addq $8, %rsp
  pushq $USER_DS
  pushq %r13
  pushq $0x202
  pushq $USER_CS
  pushq %r12
  movq %r14, %rdi
  movq %r15, %rsi
  movq %rbx, %rdx
  xorl %eax, %eax
  xorl %ebx, %ebx
  xorl %ecx, %ecx
  xorl %ebp, %ebp
  xorl %r8d, %r8d
  xorl %r9d, %r9d
  xorl %r10d, %r10d
  xorl %r11d, %r11d
  xorl %r12d, %r12d
  xorl %r13d, %r13d
  xorl %r14d, %r14d
  xorl %r15d, %r15d
  iretq

/* [[noreturn]] void user_return(uint64_t value): unwind to the user_enter() of this CPU
 * and make it return `value`. Called from a syscall or fault handler on the trap stack. */
  .globl user_return
user_return:
  movq %gs:PERCPU_RETURN_RSP, %rsp
  movq %rdi, %rax
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbp
  popq %rbx
  ret

/* [[noreturn]] void run_on_stack(void (*fn)(), uint64_t stack_top): switch to another
 * stack and call fn, which never returns. */
  .text
  .globl run_on_stack
run_on_stack:
  movq %rsi, %rsp
  xorl %ebp, %ebp
  call *%rdi
  ud2

/* bool probe_read_asm(const void* address): read one byte; a fault there resumes at
 * probe_fixup_target with RAX = 1 (see kernel/probe.cc). */
  .text
  .globl probe_read_asm, probe_read_insn, probe_fixup_target
probe_read_asm:
  xorl %eax, %eax
probe_read_insn:
  movb (%rdi), %cl
  ret
probe_fixup_target:
  movl $1, %eax
  ret

/* The AP trampoline, copied to a page below 1 MiB and entered by SIPI in real mode at
 * CS = page >> 4, IP = 0: real mode → 32-bit protected mode → long mode on the boot page
 * tables (which identity-map the first GiB), then a jump to ap_main in the higher half.
 * The BSP patches the fields at the end (offsets from trampoline_start) before each SIPI. */
  .section .rodata
  .balign 16
  .globl trampoline_start, trampoline_end, trampoline_prot, trampoline_long
  .globl trampoline_gdt, trampoline_gdtr, trampoline_jump32, trampoline_jump64
  .globl trampoline_cr3, trampoline_stack, trampoline_entry, trampoline_cpu
  .code16
trampoline_start:
  cli
  cld
  movw %cs, %ax
  movw %ax, %ds
  xorl %ebx, %ebx
  movw %ax, %bx
  shll $4, %ebx
  lgdtl trampoline_gdtr - trampoline_start
  movl %cr0, %eax
  orl $1, %eax
  movl %eax, %cr0
  ljmpl *(trampoline_jump32 - trampoline_start)
  .code32
trampoline_prot:
  movl $0x10, %eax
  movl %eax, %ds
  movl %eax, %es
  movl %eax, %ss
  movl $0x20, %eax
  movl %eax, %cr4
  movl (trampoline_cr3 - trampoline_start)(%ebx), %eax
  movl %eax, %cr3
  movl $0xc0000080, %ecx
  rdmsr
  orl $0x901, %eax
  wrmsr
  movl $0x80010001, %eax
  movl %eax, %cr0
  ljmpl *(trampoline_jump64 - trampoline_start)(%ebx)
  .code64
trampoline_long:
  movl $0x10, %eax
  movl %eax, %ds
  movl %eax, %es
  movl %eax, %ss
  movq trampoline_stack(%rip), %rsp
  movq trampoline_cpu(%rip), %rdi
  movq trampoline_entry(%rip), %rax
  jmp *%rax
  .balign 8
trampoline_gdt:
  .quad 0
  .quad 0x00af9a000000ffff  /* 0x08: 64-bit code */
  .quad 0x00cf92000000ffff  /* 0x10: data */
  .quad 0x00cf9a000000ffff  /* 0x18: 32-bit code */
trampoline_gdtr:
  .word 31
  .long 0           /* patched: physical address of trampoline_gdt */
  .balign 4
trampoline_jump32:
  .long 0           /* patched: physical address of trampoline_prot */
  .word 0x18
  .balign 4
trampoline_jump64:
  .long 0           /* patched: physical address of trampoline_long */
  .word 0x08
  .balign 8
trampoline_cr3:
  .quad 0
trampoline_stack:
  .quad 0
trampoline_entry:
  .quad 0
trampoline_cpu:
  .quad 0
trampoline_end:
