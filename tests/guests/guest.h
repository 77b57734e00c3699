/* Shared macros of the PVH test guests (GNU assembler, 32-bit protected mode, paging off).
   The guests run with ring 0 emulated instruction by instruction on some hosts, so they
   print with `rep outsb` and stay tiny. */
#define COM1 0x3f8
#define EXIT_PORT 0xf4

/* The PVH entry note: Xen ELF note type 18 (XEN_ELFNOTE_PHYS32_ENTRY). */
.macro PVH_NOTE entry
  .pushsection .note.Xen, "a", @note
  .balign 4
  .long 4           /* name size: "Xen\0" */
  .long 4           /* descriptor size */
  .long 18          /* XEN_ELFNOTE_PHYS32_ENTRY */
  .asciz "Xen"
  .long \entry
  .popsection
.endm

/* Print a string literal on COM1 with one rep outsb. Clobbers ecx, edx, esi. */
.macro PRINT text
  .pushsection .rodata
.Lstr\@: .ascii "\text"
.Lend\@:
  .popsection
  mov $.Lstr\@, %esi
  mov $(.Lend\@ - .Lstr\@), %ecx
  mov $COM1, %dx
  rep outsb
.endm

/* End the VM with status \code (one byte to port 0xf4), and never continue. */
.macro EXIT code
  mov $\code, %al
  out %al, $EXIT_PORT
.Lhalt\@:
  hlt
  jmp .Lhalt\@
.endm

/* Define print_hex32, which prints eax as 8 hex digits on COM1. Clobbers eax, ecx, edx. */
.macro DEFINE_PRINT_HEX32
print_hex32:
  push %ebx
  mov %eax, %ebx
  mov $8, %ecx
  mov $COM1, %dx
.Ldigit\@:
  rol $4, %ebx
  mov %ebx, %eax
  and $0xf, %eax
  movb .Lhex_digits\@(%eax), %al
  out %al, %dx
  loop .Ldigit\@
  pop %ebx
  ret
  .pushsection .rodata
.Lhex_digits\@: .ascii "0123456789abcdef"
  .popsection
.endm
