/* PVH entry of the hvmm guest kernel: the "Xen" PHYS32_ENTRY note, the 32-bit entry point,
 * the boot page tables and the switch to long mode and to the higher half.
 *
 * Entry state (Xen PVH ABI): 32-bit protected mode, paging off, flat CS/DS, EBX = physical
 * address of hvm_start_info. Nothing else (stack, GDT, IDT) is promised. */

#define KERNEL_VMA 0xffffffff80000000
#define MSR_EFER 0xc0000080
#define EFER_SCE 0x001
#define EFER_LME 0x100
#define EFER_NXE 0x800
#define CR0_PE 0x00000001
#define CR0_WP 0x00010000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20

/* XEN_ELFNOTE_PHYS32_ENTRY (18): 4-byte physical entry address. An empty note follows so
 * that a loader reading the descriptor as 8 bytes still sees a zero upper half. */
  .section .note.Xen, "a"
  .balign 4
  .long 4, 4, 18
  .asciz "Xen"
  .balign 4
  .long pvh_entry
  .long 0, 0, 0

  .section .boot.text, "ax"
  .code32
  .globl pvh_entry
pvh_entry:
  cli
  cld
  rdtsc
  movl %eax, boot_entry_tsc
  movl %edx, boot_entry_tsc + 4
  movl %ebx, %edi
  lgdt boot_gdtr
  movl $0x10, %eax
  movl %eax, %ds
  movl %eax, %es
  movl %eax, %ss
  movl $boot_stack32_top, %esp
  movl $CR4_PAE, %eax
  movl %eax, %cr4
  movl $boot_pml4, %eax
  movl %eax, %cr3
  movl $MSR_EFER, %ecx
  rdmsr
  orl $(EFER_SCE | EFER_LME | EFER_NXE), %eax
  wrmsr
  movl $(CR0_PE | CR0_WP | CR0_PG), %eax
  movl %eax, %cr0
  ljmp $0x08, $boot_long_mode

  .code64
boot_long_mode:
  movl $0x10, %eax
  movl %eax, %ds
  movl %eax, %es
  movl %eax, %ss
  xorl %eax, %eax
  movl %eax, %fs
  movl %eax, %gs
  movabsq $higher_half_entry, %rax
  jmp *%rax

/* The boot GDT: null, 64-bit code (0x08), flat data (0x10). Also used by the AP trampoline
 * after it reaches long mode. */
  .balign 8
boot_gdt:
  .quad 0
  .quad 0x00af9a000000ffff
  .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdtr:
  .word boot_gdt_end - boot_gdt - 1
  .long boot_gdt

/* Boot page tables: the first GiB identity mapped and mapped again at KERNEL_VMA, with
 * 2 MiB pages built at assembly time (no emulated loop at boot). */
  .section .boot.data, "aw"
  .balign 4096
  .globl boot_pml4
boot_pml4:
  .quad boot_pdpt_low + 0x3
  .fill 510, 8, 0
  .quad boot_pdpt_high + 0x3
boot_pdpt_low:
  .quad boot_pd + 0x3
  .fill 511, 8, 0
boot_pdpt_high:
  .fill 510, 8, 0
  .quad boot_pd + 0x3
  .quad 0
boot_pd:
  .set page, 0
  .rept 512
  .quad (page << 21) | 0x83
  .set page, page + 1
  .endr
  .globl boot_entry_tsc
boot_entry_tsc:
  .quad 0
boot_stack32:
  .fill 64, 1, 0
boot_stack32_top:

/* The higher-half side: zero .bss, take the boot stack and enter C++. */
  .section .text.entry, "ax"
  .globl higher_half_entry
higher_half_entry:
  movq %rdi, %r12
  leaq __bss_start(%rip), %rdi
  leaq __bss_end(%rip), %rcx
  subq %rdi, %rcx
  shrq $3, %rcx
  xorl %eax, %eax
  rep stosq
  leaq boot_stack_top(%rip), %rsp
  xorl %ebp, %ebp
  movq %r12, %rdi
  call kernel_main
1:
  hlt
  jmp 1b

  .section .bss
  .balign 16
  .globl boot_stack
boot_stack:
  .fill 16384, 1, 0
boot_stack_top:
