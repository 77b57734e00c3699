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

/* The seeded pattern of the control channel's workloads (documented in README.md):
 * word i of page p is h(p) + i, where h(p) = splitmix64(seed + (p + 1) * 0x9e3779b97f4a7c15),
 * and the checksum folds every word in page order, c = (c ^ word) * 0x100000001b3 starting
 * from 0xcbf29ce484222325 (FNV-1a over 64-bit words). The kernel maps the area first; the
 * programs are entered with (base, pages, seed) in RDI, RSI, RDX, keep base in R12, pages
 * in R13 and seed in R14, report the checksum and exit with the number of mismatched pages.
 */
#define PATTERN_GOLDEN 0x9e3779b97f4a7c15
#define PATTERN_MIX1 0xbf58476d1ce4e5b9
#define PATTERN_MIX2 0x94d049bb133111eb
#define CHECKSUM_OFFSET 0xcbf29ce484222325
#define CHECKSUM_PRIME 0x100000001b3
#define LCG_MULTIPLIER 0x5851f42d4c957f2d

/* pattern_page_base: RAX = h(RDI) for seed R14; clobbers RCX, RDX. */
pattern_page_base:
  leaq 1(%rdi), %rdx
  movabsq $PATTERN_GOLDEN, %rcx
  imulq %rcx, %rdx
  addq %r14, %rdx
  movq %rdx, %rax
  shrq $30, %rax
  xorq %rax, %rdx
  movabsq $PATTERN_MIX1, %rcx
  imulq %rcx, %rdx
  movq %rdx, %rax
  shrq $27, %rax
  xorq %rax, %rdx
  movabsq $PATTERN_MIX2, %rcx
  imulq %rcx, %rdx
  movq %rdx, %rax
  shrq $31, %rax
  xorq %rdx, %rax
  ret

/* pattern_fill_page: write page RDI's 512 words; clobbers RAX, RCX, RDX, R8. */
pattern_fill_page:
  call pattern_page_base
  movq %rdi, %r8
  shlq $12, %r8
  addq %r12, %r8
  xorl %ecx, %ecx
1:
  leaq (%rax,%rcx), %rdx
  movq %rdx, (%r8,%rcx,8)
  incq %rcx
  cmpq $512, %rcx
  jb 1b
  ret

/* pattern_touch_seq(base, pages, seed): write the pattern to pages 0, 1, ..., then check. */
  .globl user_pattern_touch_seq
user_pattern_touch_seq:
  movq %rdi, %r12
  movq %rsi, %r13
  movq %rdx, %r14
  xorl %edi, %edi
1:
  cmpq %r13, %rdi
  jae pattern_check
  call pattern_fill_page
  incq %rdi
  jmp 1b

/* pattern_touch_random(base, pages, seed): write the pattern to every page once, in the
 * order of a full-period LCG modulo the next power of two k >= pages (x = x * a + c mod k,
 * a = 1 mod 4, c = (seed >> 32) | 1 odd, x0 = seed mod k; indices >= pages are skipped),
 * then check in page order. */
  .globl user_pattern_touch_random
user_pattern_touch_random:
  movq %rdi, %r12
  movq %rsi, %r13
  movq %rdx, %r14
  movl $1, %ebx
1:
  cmpq %r13, %rbx
  jae 2f
  shlq $1, %rbx
  jmp 1b
2:
  leaq -1(%rbx), %r15
  movq %r14, %r9
  andq %r15, %r9
  movq %r14, %r10
  shrq $32, %r10
  orq $1, %r10
  movabsq $LCG_MULTIPLIER, %r11
3:
  imulq %r11, %r9
  addq %r10, %r9
  andq %r15, %r9
  cmpq %r13, %r9
  jae 4f
  movq %r9, %rdi
  call pattern_fill_page
4:
  decq %rbx
  jnz 3b
  jmp pattern_check

/* pattern_verify(base, pages, seed): check a held workload's pages again. */
  .globl user_pattern_verify
user_pattern_verify:
  movq %rdi, %r12
  movq %rsi, %r13
  movq %rdx, %r14

/* pattern_check: read pages 0 .. pages-1, fold every word into the checksum (RBX), count
 * pages with any word off the pattern (R9); report the checksum, exit(mismatched pages). */
pattern_check:
  movabsq $CHECKSUM_OFFSET, %rbx
  movabsq $CHECKSUM_PRIME, %r10
  xorl %r9d, %r9d
  xorl %r15d, %r15d
  testq %r13, %r13
  jz 4f
1:
  movq %r15, %rdi
  call pattern_page_base
  movq %r15, %r8
  shlq $12, %r8
  addq %r12, %r8
  xorl %ecx, %ecx
  xorl %r11d, %r11d
2:
  movq (%r8,%rcx,8), %rdx
  xorq %rdx, %rbx
  imulq %r10, %rbx
  leaq (%rax,%rcx), %rdi
  cmpq %rdi, %rdx
  je 3f
  movl $1, %r11d
3:
  incq %rcx
  cmpq $512, %rcx
  jb 2b
  addq %r11, %r9
  incq %r15
  cmpq %r13, %r15
  jb 1b
4:
  SYSCALL1 SYS_REPORT, %rbx
  SYSCALL1 SYS_EXIT, %r9

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
