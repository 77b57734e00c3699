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

/* The page mix of base/include/hvmm/base/pattern_mix.h, word for word: page p of seed s has
 * the base b = h(p) above and, by b mod 8, is a zero page (0-2), a text-like page (3-5: 64
 * lines of 56 bytes of phrase (b >> 3) mod 8 and a word of 7 hex digits of the line number
 * (p * 64 + line) mod 2^28 then '\n') or a random page (6-7: word i = mix(b + (i + 1) *
 * golden)). The checksum is the same fold as pattern_check's. Programs are entered with
 * (base, pages, seed) like the pattern ones and keep them in R12, R13, R14. */
#define MIX_LINE_NUMBER_MASK 0xfffffff
#define MIX_NEWLINE_WORD 0x0a00000000000000

/* The eight phrases: 56 bytes each, i.e. 7 little-endian words (the header's first 56
 * characters of each). */
  .balign 8
mix_phrases:
  .ascii "INFO  vmm: balloon target reached, guest memory settled "
  .ascii "DEBUG fault: resolved missing page by zero fill in windo"
  .ascii "WARN  pool: entry kept resident, payload above threshold"
  .ascii "INFO  reclaim: epoch harvested, cold pages moved to pool"
  .ascii "TRACE vcpu: exit io port 0x3f8 write of one byte to uart"
  .ascii "INFO  control: workload verified, checksums match again "
  .ascii "DEBUG memslot: region installed over the primary mapping"
  .ascii "ERROR virtio: descriptor chain loops, device needs reset"

/* mix_word: RAX = word RCX of page RBP whose base is RSI; clobbers RDX only. */
mix_word:
  movl %esi, %eax
  andl $7, %eax
  cmpl $2, %eax
  jbe 5f
  cmpl $5, %eax
  jbe 2f
  /* random: mix64(b + (i + 1) * golden) */
  leaq 1(%rcx), %rax
  movabsq $PATTERN_GOLDEN, %rdx
  imulq %rdx, %rax
  addq %rsi, %rax
  movq %rax, %rdx
  shrq $30, %rdx
  xorq %rdx, %rax
  movabsq $PATTERN_MIX1, %rdx
  imulq %rdx, %rax
  movq %rax, %rdx
  shrq $27, %rdx
  xorq %rdx, %rax
  movabsq $PATTERN_MIX2, %rdx
  imulq %rdx, %rax
  movq %rax, %rdx
  shrq $31, %rdx
  xorq %rdx, %rax
  ret
2:
  /* text: word 7 of a line is its tag, words 0-6 the phrase's */
  movl %ecx, %eax
  andl $7, %eax
  cmpl $7, %eax
  je 3f
  movq %rsi, %rdx
  shrq $3, %rdx
  andl $7, %edx
  imull $7, %edx, %edx
  addl %eax, %edx
  leaq mix_phrases(%rip), %rax
  movq (%rax,%rdx,8), %rax
  ret
3:
  /* the tag: digits of (p * 64 + i / 8) mod 2^28, least significant into byte 6 */
  pushq %rbx
  pushq %rcx
  movq %rbp, %rdx
  shlq $6, %rdx
  shrq $3, %rcx
  addq %rcx, %rdx
  andl $MIX_LINE_NUMBER_MASK, %edx
  movabsq $MIX_NEWLINE_WORD, %rax
  movl $48, %ecx
4:
  movl %edx, %ebx
  andl $15, %ebx
  cmpl $10, %ebx
  jb 6f
  addl $39, %ebx  /* 'a' - '0' - 10 */
6:
  addl $48, %ebx  /* '0' */
  shlq %cl, %rbx
  orq %rbx, %rax
  shrl $4, %edx
  subl $8, %ecx
  jns 4b
  popq %rcx
  popq %rbx
  ret
5:
  xorl %eax, %eax
  ret

/* mix_fill_page: write page RDI's 512 words; clobbers RAX, RCX, RDX, RSI, RBP, R8. */
mix_fill_page:
  call pattern_page_base
  movq %rax, %rsi
  movq %rdi, %rbp
  movq %rdi, %r8
  shlq $12, %r8
  addq %r12, %r8
  xorl %ecx, %ecx
1:
  call mix_word
  movq %rax, (%r8,%rcx,8)
  incq %rcx
  cmpq $512, %rcx
  jb 1b
  ret

/* pattern_touch_mix(base, pages, seed): write the mix to pages 0, 1, ..., then check it. */
  .globl user_pattern_touch_mix
user_pattern_touch_mix:
  movq %rdi, %r12
  movq %rsi, %r13
  movq %rdx, %r14
  xorl %edi, %edi
1:
  cmpq %r13, %rdi
  jae mix_check
  call mix_fill_page
  incq %rdi
  jmp 1b

/* pattern_verify_mix(base, pages, seed): check a held mix workload's pages again. */
  .globl user_pattern_verify_mix
user_pattern_verify_mix:
  movq %rdi, %r12
  movq %rsi, %r13
  movq %rdx, %r14

/* mix_check: pattern_check for the mix: fold every word of pages 0 .. pages-1 in page
 * order into RBX, count pages with any word off the mix in R9; report the checksum, exit
 * (mismatched pages). */
mix_check:
  movabsq $CHECKSUM_OFFSET, %rbx
  movabsq $CHECKSUM_PRIME, %r10
  xorl %r9d, %r9d
  xorl %r15d, %r15d
  testq %r13, %r13
  jz 4f
1:
  movq %r15, %rdi
  call pattern_page_base
  movq %rax, %rsi
  movq %r15, %rbp
  movq %r15, %r8
  shlq $12, %r8
  addq %r12, %r8
  xorl %ecx, %ecx
  xorl %r11d, %r11d
2:
  call mix_word
  movq (%r8,%rcx,8), %rdx
  xorq %rdx, %rbx
  imulq %r10, %rbx
  cmpq %rax, %rdx
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

/* The rewrite programs of kWorkloadRewrite, entered with (seed, first_page | pages << 32,
 * deadline TSC) in RDI, RSI, RDX (three registers is all a program gets, so the area's base
 * is the fixed kPatternBase of workloads.h). Round after round they pass over pages
 * [first_page, first_page + pages): rewrite_seq writes the pattern, rewrite_mix the mix
 * (the same contents, so a later verify still passes), reread reads every word; after each
 * round they read the TSC (ring 3 may: CR4.TSD is clear) and stop once it reached the
 * deadline, so at least one round runs. They report the rounds and exit 0. */
#define PATTERN_BASE 0x100000000

/* pattern_read_page: read page RDI's 512 words; clobbers RAX, RCX, RDX, R8. */
pattern_read_page:
  movq %rdi, %r8
  shlq $12, %r8
  addq %r12, %r8
  xorl %ecx, %ecx
  xorl %edx, %edx
1:
  movq (%r8,%rcx,8), %rax
  xorq %rax, %rdx
  incq %rcx
  cmpq $512, %rcx
  jb 1b
  ret

  .globl user_pattern_rewrite_seq
user_pattern_rewrite_seq:
  leaq pattern_fill_page(%rip), %r11
  jmp pattern_rewrite

  .globl user_pattern_rewrite_mix
user_pattern_rewrite_mix:
  leaq mix_fill_page(%rip), %r11
  jmp pattern_rewrite

  .globl user_pattern_reread
user_pattern_reread:
  leaq pattern_read_page(%rip), %r11

/* pattern_rewrite: call the page routine in R11 for every page of the range (R15 first, R13
 * end), round after round until the TSC reaches R10; count rounds in RBX. */
pattern_rewrite:
  movabsq $PATTERN_BASE, %r12
  movq %rdi, %r14
  movl %esi, %r15d
  movq %rsi, %r13
  shrq $32, %r13
  addq %r15, %r13
  movq %rdx, %r10
  xorl %ebx, %ebx
1:
  movq %r15, %rdi
2:
  call *%r11
  incq %rdi
  cmpq %r13, %rdi
  jb 2b
  incq %rbx
  rdtsc
  shlq $32, %rdx
  orq %rdx, %rax
  cmpq %r10, %rax
  jb 1b
  SYSCALL1 SYS_REPORT, %rbx
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
