/*
 * Multiboot v1 entry for the 64-bit kernels (bench, startup64).
 *
 * The image is ELF32 (Multiboot v1 loaders, QEMU's included, refuse ELF64), entered in 32-bit
 * protected mode. This code identity-maps the first 4 GiB with 2 MiB pages (so RAM, the PCI
 * BARs SeaBIOS places below 4 GiB, the IOAPIC/LAPIC and pc-testdev's 0xff000000 window are all
 * reachable at their physical addresses), enables PAE + EFER.LME + paging, loads a GDT with a
 * 64-bit code segment and far-jumps into long mode, then calls kmain() with a 16 KiB stack.
 * The serial port is not initialised here so startup64 touches no device before its exit.
 */
.section .multiboot,"a"
.align 4
.long 0x1BADB002
.long 0x00000003
.long -(0x1BADB002 + 0x00000003)

.text
.code32
.globl _start
_start:
    cli
    mov %eax, mb_magic
    mov %ebx, mb_info_addr
    mov $stack_top, %esp

    /* 4 page directories, 2048 entries of 2 MiB: present, writable, PS. */
    mov $pd, %edi
    mov $0x83, %eax
    xor %edx, %edx
    mov $2048, %ecx
1:  mov %eax, (%edi)
    mov %edx, 4(%edi)
    add $0x200000, %eax
    adc $0, %edx
    add $8, %edi
    loop 1b
    /* PDPT entries 0-3 -> the 4 page directories. */
    mov $pdpt, %edi
    mov $pd + 3, %eax
    mov $4, %ecx
2:  mov %eax, (%edi)
    movl $0, 4(%edi)
    add $4096, %eax
    add $8, %edi
    loop 2b
    /* PML4[0] -> PDPT. The rest of the tables is zero (.bss, zero-filled by the loader). */
    movl $pdpt + 3, pml4
    movl $0, pml4 + 4

    mov $pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax                   /* PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx            /* EFER */
    rdmsr
    or $0x100, %eax                  /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax             /* PG | PE: long mode becomes active */
    mov %eax, %cr0
    lgdt gdt64_desc
    ljmp $0x08, $long_entry

.code64
long_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $stack_top, %esp             /* zero-extends into RSP */
    xor %ebp, %ebp
    call kmain
    mov $1, %edi                     /* kmain must not return: report a failure */
    call exit

.data
.globl mb_magic, mb_info_addr
mb_magic: .long 0
mb_info_addr: .long 0
.align 8
gdt64:
    .quad 0
    .quad 0x00af9a000000ffff         /* 0x08: 64-bit code (L=1) */
    .quad 0x00cf92000000ffff         /* 0x10: data */
gdt64_end:
gdt64_desc:
    .word gdt64_end - gdt64 - 1
    .long gdt64

.bss
.align 4096
pml4: .skip 4096
pdpt: .skip 4096
pd:   .skip 4096 * 4
.align 16
.skip 16384
stack_top:

.section .note.GNU-stack,"",@progbits
