/* Built-in ring-3 programs. They live in .user.text, which every user address space maps
 * at kUserCodeBase, so they use only registers, their own memory and `syscall`:
 * RAX = number (0 exit, 1 brk, 2 mmap, 3 munmap, 4 report), arguments in RDI, RSI, RDX.
 * Each is entered with its arguments in RDI, RSI, RDX. */

#define SYS_EXIT 0
#define SYS_BRK 1
#define SYS_MMAP 2
#define SYS_MUNMAP 3
#define SYS_REPORT 4
#define PROT_RW 3

.macro SYSCALL1 nr, a0
  movq \a0, %rdi
  movl $\nr, %eax
  syscall
.endm

.macro SYSCALL2 nr, a0, a1
  movq \a0, %rdi
  movq \a1, %rsi
  movl $\nr, %eax
  syscall
.endm

  .section .user.text, "ax"

/* touch_seq(len): mmap len bytes, write each page's offset into it, read all back, munmap,
 * exit(number of mismatching pages). */
  .globl user_touch_seq
user_touch_seq:
  movq %rdi, %r12
  SYSCALL2 SYS_MMAP, %r12, $PROT_RW
  testq %rax, %rax
  js user_fail
  movq %rax, %r13
  xorl %ecx, %ecx
1:
  movq %rcx, (%r13,%rcx)
  addq $4096, %rcx
  cmpq %r12, %rcx
  jb 1b
  xorl %ecx, %ecx
  xorl %r14d, %r14d
2:
  cmpq %rcx, (%r13,%rcx)
  je 3f
  incq %r14
3:
  addq $4096, %rcx
  cmpq %r12, %rcx
  jb 2b
  SYSCALL2 SYS_MUNMAP, %r13, %r12
  SYSCALL1 SYS_EXIT, %r14

/* touch_random(working_set, touches, seed): random page increments (xorshift64) over an
 * mmap'ed working set; reports the sum of all counters (must equal `touches`), exits 0 if
 * it matches. */
  .globl user_touch_random
user_touch_random:
  movq %rdi, %r12
  movq %rsi, %r15
  movq %rdx, %rbx
  orq $1, %rbx
  SYSCALL2 SYS_MMAP, %r12, $PROT_RW
  testq %rax, %rax
  js user_fail
  movq %rax, %r13
  movq %r12, %r14
  shrq $12, %r14
  movq %r15, %r8
1:
  movq %rbx, %rax
  shlq $13, %rax
  xorq %rax, %rbx
  movq %rbx, %rax
  shrq $7, %rax
  xorq %rax, %rbx
  movq %rbx, %rax
  shlq $17, %rax
  xorq %rax, %rbx
  movq %rbx, %rax
  xorl %edx, %edx
  divq %r14
  shlq $12, %rdx
  incq (%r13,%rdx)
  decq %r8
  jnz 1b
  xorl %ecx, %ecx
  xorl %r9d, %r9d
2:
  addq (%r13,%rcx), %r9
  addq $4096, %rcx
  cmpq %r12, %rcx
  jb 2b
  SYSCALL1 SYS_REPORT, %r9
  SYSCALL2 SYS_MUNMAP, %r13, %r12
  xorl %edi, %edi
  cmpq %r15, %r9
  setne %dil
  movl $SYS_EXIT, %eax
  syscall

/* churn(iterations, size): mmap, touch first and last page, munmap, repeated. */
  .globl user_churn
user_churn:
  movq %rdi, %r12
  movq %rsi, %r13
1:
  SYSCALL2 SYS_MMAP, %r13, $PROT_RW
  testq %rax, %rax
  js user_fail
  movq %rax, %r14
  movq $1, (%r14)
  movq $1, -8(%r14,%r13)
  SYSCALL2 SYS_MUNMAP, %r14, %r13
  testq %rax, %rax
  jnz user_fail
  decq %r12
  jnz 1b
  SYSCALL1 SYS_EXIT, $0

/* brk_grow(bytes): raise the break, touch every new page, lower it again; exit 0. */
  .globl user_brk_grow
user_brk_grow:
  movq %rdi, %r13
  SYSCALL1 SYS_BRK, $0
  movq %rax, %r12
  leaq (%r12,%r13), %r14
  SYSCALL1 SYS_BRK, %r14
  cmpq %r14, %rax
  jne user_fail
  movq %r12, %rcx
1:
  movq %rcx, (%rcx)
  addq $4096, %rcx
  cmpq %r14, %rcx
  jb 1b
  SYSCALL1 SYS_BRK, %r12
  cmpq %r12, %rax
  jne user_fail
  SYSCALL1 SYS_EXIT, $0

/* tlb_reader(data, status, control): forever copy *data to status[0] and bump status[1],
 * until *control becomes non-zero; exit 0. Used by the TLB shootdown selftest. */
  .globl user_tlb_reader
user_tlb_reader:
1:
  movq (%rdi), %rax
  movq %rax, (%rsi)
  incq 8(%rsi)
  cmpq $0, (%rdx)
  je 1b
  SYSCALL1 SYS_EXIT, $0

/* write_to(address): store to an address (expects to be killed); exit 0 if it survives. */
  .globl user_write_to
user_write_to:
  movq $1, (%rdi)
  SYSCALL1 SYS_EXIT, $0

/* read_from(address): load from an address (expects to be killed); exit 0 if it survives. */
  .globl user_read_from
user_read_from:
  movq (%rdi), %rax
  SYSCALL1 SYS_EXIT, $0

user_fail:
  SYSCALL1 SYS_EXIT, $99
