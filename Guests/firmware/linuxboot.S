/*
 * linuxboot: a synthesized Linux bzImage whose real-mode setup code reports how it was loaded
 * (for `-bios ... -kernel linuxboot.bzImage`: QEMU's linuxboot_dma.bin option ROM loads it
 * from fw_cfg and enters the setup code, as a boot loader does).
 *
 * File layout (build.sh links this at 0 as a flat binary):
 *   0x000-0x1ff  boot sector (empty but for the header fields at 0x1f1-0x1ff)
 *   0x200-       setup header ("HdrS", protocol 2.15, LOADED_HIGH), then the setup code
 *   0x800-       the "protected-mode kernel": a 4 KiB marker block "KERNEL-PAYLOAD-0..."
 *
 * The loader enters at (setup segment + 0x20):0000 with DS = ES = SS = the setup segment, so
 * DS offsets are file offsets. The code prints its segment registers and stack, the header
 * fields the loader patched (type_of_loader, loadflags, heap_end_ptr, cmd_line_ptr, vid_mode,
 * ramdisk_image/size, setup_data), the command line at cmd_line_ptr, and the first 16 bytes at
 * code32_start (1 MiB) and at ramdisk_image (copied down with INT 15h AH=87h), then exits
 * through isa-debug-exit (port 0xf4, value 0: status 1). Output goes to COM1 by polling.
 */
    .code16
    .text
    .globl _start
_start:
    .org 0x1f1
setup_sects:    .byte 3                 /* setup = 4 sectors (0x000-0x7ff) */
root_flags:     .word 0
syssize:        .long 0x100             /* 16-byte paragraphs of the payload */
ram_size:       .word 0
vid_mode:       .word 0xfffd
root_dev:       .word 0
boot_flag:      .word 0xaa55
    .org 0x200
    jmp setup_start
    .ascii "HdrS"
version:        .word 0x020f
realmode_swtch: .long 0
start_sys_seg:  .word 0
kernel_version: .word 0
type_of_loader: .byte 0
loadflags:      .byte 0x01              /* LOADED_HIGH */
setup_move_size: .word 0
code32_start:   .long 0x100000
ramdisk_image:  .long 0
ramdisk_size:   .long 0
bootsect_kludge: .long 0
heap_end_ptr:   .word 0
ext_loader_ver: .byte 0
ext_loader_type: .byte 0
cmd_line_ptr:   .long 0
initrd_addr_max: .long 0x7fffffff
kernel_alignment: .long 0x200000
relocatable:    .byte 0
min_alignment:  .byte 0
xloadflags:     .word 0
cmdline_size:   .long 2047
hw_subarch:     .long 0
hw_subarch_data: .quad 0
payload_offset: .long 0
payload_length: .long 0
setup_data:     .quad 0
pref_address:   .quad 0x1000000
init_size:      .long 0x1000
handover_offset: .long 0
kernel_info_offset: .long 0

setup_start:
    cli
    cld
    mov %sp, entry_sp
    mov %ss, entry_ss
    mov %es, entry_es
    mov %cs, entry_cs
    mov $msg_entry, %si
    call puts
    mov entry_cs, %ax
    call puthex16
    mov $msg_ds, %si
    call puts
    mov %ds, %ax
    call puthex16
    mov $msg_es, %si
    call puts
    mov entry_es, %ax
    call puthex16
    mov $msg_ss, %si
    call puts
    mov entry_ss, %ax
    call puthex16
    mov $msg_sp, %si
    call puts
    mov entry_sp, %ax
    call puthex16
    call newline

    mov $msg_loader, %si
    call puts
    mov type_of_loader, %al
    call puthex8
    mov $msg_loadflags, %si
    call puts
    mov loadflags, %al
    call puthex8
    mov $msg_heap, %si
    call puts
    mov heap_end_ptr, %ax
    call puthex16
    mov $msg_vid, %si
    call puts
    mov vid_mode, %ax
    call puthex16
    call newline

    mov $msg_cmdptr, %si
    call puts
    mov cmd_line_ptr, %eax
    call puthex32
    mov $msg_rd, %si
    call puts
    mov ramdisk_image, %eax
    call puthex32
    mov $msg_rdsize, %si
    call puts
    mov ramdisk_size, %eax
    call puthex32
    mov $msg_setup_data, %si
    call puts
    mov setup_data + 4, %eax
    call puthex32
    mov setup_data, %eax
    call puthex32
    call newline

    /* The command line, through ES = cmd_line_ptr >> 4. */
    mov $msg_cmdline, %si
    call puts
    mov cmd_line_ptr, %eax
    mov %eax, %ebx
    shr $4, %eax
    mov %ax, %es
    and $0xf, %bx
1:  mov %es:(%bx), %al
    test %al, %al
    jz 2f
    call putc
    inc %bx
    cmp $2047, %bx
    jb 1b
2:  call newline

    /* 16 bytes of the kernel at code32_start, and of the initrd if there is one. */
    mov $msg_kernel, %si
    call puts
    mov code32_start, %eax
    call peek16
    cmpl $0, ramdisk_size
    je 3f
    mov $msg_initrd, %si
    call puts
    mov ramdisk_image, %eax
    call peek16
3:  mov $msg_pass, %si
    call puts
    mov $0xf4, %dx
    xor %eax, %eax
    outl %eax, %dx
4:  hlt
    jmp 4b

/* peek16: copy 16 bytes from linear EAX to `buffer` with INT 15h AH=87h and print them. */
peek16:
    mov %eax, %ebx
    mov %bx, gdt_source + 2
    shr $16, %ebx
    mov %bl, gdt_source + 4
    mov %bh, gdt_source + 7
    mov %ds, %ax
    movzwl %ax, %eax
    shl $4, %eax
    add $buffer, %eax
    mov %ax, gdt_dest + 2
    shr $16, %eax
    mov %al, gdt_dest + 4
    mov %ah, gdt_dest + 7
    push %ds
    pop %es
    mov $move_gdt, %si
    mov $8, %cx                         /* words */
    mov $0x87, %ah
    int $0x15
    jc 6f
    mov $buffer, %si
    mov $16, %cx
5:  lodsb
    cmp $0x20, %al
    jb 7f
    cmp $0x7e, %al
    ja 7f
    call putc
    loop 5b
    jmp newline
7:  mov $'.', %al
    call putc
    loop 5b
    jmp newline
6:  mov $msg_move_failed, %si
    call puts
    ret

puts:
    push %ax
1:  lodsb
    test %al, %al
    jz 2f
    call putc
    jmp 1b
2:  pop %ax
    ret

putc:
    push %dx
    push %ax
    mov $0x3fd, %dx
1:  inb %dx, %al
    test $0x20, %al
    jz 1b
    pop %ax
    mov $0x3f8, %dx
    outb %al, %dx
    pop %dx
    ret

newline:
    push %ax
    mov $'\n', %al
    call putc
    pop %ax
    ret

/* puthex32/16/8: EAX/AX/AL as 8/4/2 lowercase hex digits. */
puthex32:
    push %eax
    shr $16, %eax
    call puthex16
    pop %eax
puthex16:
    push %ax
    mov %ah, %al
    call puthex8
    pop %ax
puthex8:
    push %ax
    shr $4, %al
    call nibble
    pop %ax
    push %ax
    call nibble
    pop %ax
    ret
nibble:
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 1f
    add $('a' - '0' - 10), %al
1:  jmp putc

msg_entry:       .asciz "linuxboot: cs="
msg_ds:          .asciz " ds="
msg_es:          .asciz " es="
msg_ss:          .asciz " ss="
msg_sp:          .asciz " sp="
msg_loader:      .asciz "type_of_loader="
msg_loadflags:   .asciz " loadflags="
msg_heap:        .asciz " heap_end_ptr="
msg_vid:         .asciz " vid_mode="
msg_cmdptr:      .asciz "cmd_line_ptr="
msg_rd:          .asciz " ramdisk_image="
msg_rdsize:      .asciz " ramdisk_size="
msg_setup_data:  .asciz " setup_data="
msg_cmdline:     .asciz "cmdline: "
msg_kernel:      .asciz "kernel: "
msg_initrd:      .asciz "initrd: "
msg_move_failed: .asciz "INT 15h AH=87h failed\n"
msg_pass:        .asciz "PASS linuxboot\n"

    .balign 2
entry_sp:   .word 0
entry_ss:   .word 0
entry_es:   .word 0
entry_cs:   .word 0
buffer:     .fill 16, 1, 0
    .balign 8
/* INT 15h AH=87h: dummy, GDT, source, destination, BIOS CS, BIOS SS. */
move_gdt:   .quad 0, 0
gdt_source: .word 0xffff, 0
            .byte 0, 0x93, 0, 0
gdt_dest:   .word 0xffff, 0
            .byte 0, 0x93, 0, 0
            .quad 0, 0

    .org 0x800
    /* The protected-mode kernel: 4 KiB. */
    .ascii "KERNEL-PAYLOAD-0"
    .fill 4096 - 16, 1, 0x4b
