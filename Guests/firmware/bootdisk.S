/*
 * bootdisk: a two-stage boot disk for firmware tests (real mode, no libraries).
 *
 * Stage 1 is the boot sector: the firmware loads it at 0000:7c00 with DL = the boot drive; it
 * reads stage 2 (sectors 1-15) to 0000:7e00 through INT 13h AH=02 and jumps there. Stage 2
 * asks the BIOS about the disk (INT 13h AH=08, 41h, 48h), reads marked sectors through both
 * the CHS (AH=02) and the extended (AH=42h) interfaces and checks their marks, reads past the
 * end of the disk (which must fail), prints the memory map (INT 12h, INT 15h E820/E801), the
 * fw_cfg "bootorder" file, and exits through isa-debug-exit (port 0xf4, value 0: status 1;
 * value 1 on a failed check: status 3) — or, on the disk labelled "DISK H", halts for good
 * after its PASS line so a monitor can inspect the machine. Everything it prints goes to COM1 by polling the UART.
 *
 * build.sh writes the image: this binary at sector 0, "DISK <label>" in the boot sector's
 * label field, and "SECTOR n" at the start of sectors 32-35, 100 and the last one.
 */
    .code16
    .text
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    sti
    cld
    mov %dl, boot_drive
    mov $msg_banner, %si
    call puts
    mov $label, %si
    call puts
    mov $msg_drive, %si
    call puts
    movzbl boot_drive, %eax
    call puthex8
    call newline
    /* Stage 2: 15 sectors from CHS 0/0/2 to 0000:7e00. */
    mov $0x020f, %ax
    mov $0x0002, %cx
    xor %dh, %dh
    mov boot_drive, %dl
    mov $0x7e00, %bx
    int $0x13
    jc stage1_fail
    jmp stage2
stage1_fail:
    mov $msg_stage1_fail, %si
    call puts
    jmp fail_exit

/* puts: print the NUL-terminated string at DS:SI on COM1. */
puts:
    push %ax
1:  lodsb
    test %al, %al
    jz 2f
    call putc
    jmp 1b
2:  pop %ax
    ret

/* putc: AL to COM1 once the transmitter holding register is empty. */
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

/* puthex8/16/32: EAX's low 2/4/8 hex digits. */
puthex8:
    push %cx
    mov $2, %cx
    jmp puthex
puthex16:
    push %cx
    mov $4, %cx
    jmp puthex
puthex32:
    push %cx
    mov $8, %cx
puthex:
    push %eax
    push %ebx
    mov %eax, %ebx
    mov %cx, %ax
    shl $2, %ax
    mov $32, %cl
    sub %al, %cl
    shl %cl, %ebx               /* the wanted digits at the top */
    shr $2, %cl
    mov $8, %ch
    sub %cl, %ch                /* digit count */
1:  rol $4, %ebx
    mov %bl, %al
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 2f
    add $('a' - '9' - 1), %al
2:  call putc
    dec %ch
    jnz 1b
    pop %ebx
    pop %eax
    pop %cx
    ret

fail_exit:
    mov $0xf4, %dx
    mov $1, %eax
    outl %eax, %dx
    cli
    hlt
    jmp fail_exit

boot_drive: .byte 0
msg_banner: .asciz "bootdisk: "
msg_drive: .asciz " booted from drive "
msg_stage1_fail: .asciz "FAIL bootdisk: stage 2 read failed\n"
    .org 0x1b0
label: .ascii "DISK ?"              /* build.sh writes the disk's label here */
    .org 0x1c0
    .asciz ""
    .org 510
    .word 0xaa55

/* ---------------------------------------------------------------- stage 2, at 0x7e00 */
stage2:
    mov $msg_stage2, %si
    call puts

    /* INT 13h AH=08: drive parameters. */
    mov $0x08, %ah
    mov boot_drive, %dl
    xor %di, %di
    int $0x13
    jc fail_int13
    push %cx
    mov $msg_params, %si
    call puts
    movzbl %dh, %eax
    inc %ax
    call putdec                 /* heads */
    mov $msg_sectors, %si
    call puts
    pop %cx
    push %cx
    movzbl %cl, %eax
    and $0x3f, %al
    mov %ax, spt
    call putdec
    mov $msg_cylinders, %si
    call puts
    pop %cx
    movzbl %ch, %eax
    mov %cl, %ah
    shr $6, %ah
    inc %ax
    call putdec
    call newline
    mov %dh, %al
    inc %al
    mov %al, heads

    /* INT 13h AH=41h: extensions present? */
    mov $0x41, %ah
    mov $0x55aa, %bx
    mov boot_drive, %dl
    int $0x13
    jc fail_int13
    cmp $0xaa55, %bx
    jne fail_int13
    push %cx
    mov $msg_edd, %si
    call puts
    movzbl %ah, %eax
    call puthex8
    mov $msg_edd_features, %si
    call puts
    pop %ax
    movzwl %ax, %eax
    call puthex16
    call newline

    /* INT 13h AH=48h: extended parameters (total sectors, bytes per sector). */
    movw $0x1e, edd_params
    mov $0x48, %ah
    mov boot_drive, %dl
    mov $edd_params, %si
    int $0x13
    jc fail_int13
    mov $msg_total, %si
    call puts
    mov edd_params + 16, %eax
    mov %eax, total_sectors
    call putdec
    mov $msg_bytes, %si
    call puts
    movzwl edd_params + 24, %eax
    call putdec
    call newline

    /* INT 13h AH=42h: sectors 32-35 to 0000:a000 in one request, each mark checked. */
    movw $4, dap_count
    movl $32, dap_lba
    call edd_read
    jc fail_int13
    mov $32, %eax
    mov $0xa000, %di
1:  call check_mark
    add $0x200, %di
    inc %eax
    cmp $36, %eax
    jb 1b

    /* INT 13h AH=02: sector 100 by CHS, from the geometry AH=08 reported. */
    mov $100, %eax
    call chs_read
    jc fail_int13
    mov $100, %eax
    mov $0xa000, %di
    call check_mark

    /* The last sector by AH=42h, then one past the end: that must fail. */
    mov total_sectors, %eax
    dec %eax
    movw $1, dap_count
    mov %eax, dap_lba
    call edd_read
    jc fail_int13
    mov total_sectors, %eax
    dec %eax
    mov $0xa000, %di
    call check_mark
    mov total_sectors, %eax
    mov %eax, dap_lba
    movw $1, dap_count
    call edd_read
    jnc fail_past_end
    mov $msg_past_end, %si
    call puts
    movzbl %ah, %eax
    call puthex8
    call newline

    /* INT 12h: conventional memory. */
    int $0x12
    mov $msg_int12, %si
    call puts
    movzwl %ax, %eax
    call putdec
    mov $msg_kib, %si
    call puts

    /* INT 15h E820: the memory map, entry by entry. */
    xor %ebx, %ebx
2:  mov $0xe820, %eax
    mov $20, %ecx
    mov $0x534d4150, %edx
    mov $e820_entry, %di
    int $0x15
    jc 3f
    cmp $0x534d4150, %eax
    jne 3f
    mov $msg_e820, %si
    call puts
    mov e820_entry + 4, %eax
    call puthex32
    mov e820_entry, %eax
    call puthex32
    mov $msg_len, %si
    call puts
    mov e820_entry + 12, %eax
    call puthex32
    mov e820_entry + 8, %eax
    call puthex32
    mov $msg_type, %si
    call puts
    mov e820_entry + 16, %eax
    call putdec
    call newline
    test %ebx, %ebx
    jnz 2b
3:
    /* INT 15h E801: memory above 1 MiB. */
    mov $0xe801, %ax
    int $0x15
    jc 4f
    push %bx
    mov $msg_e801, %si
    call puts
    movzwl %ax, %eax
    call putdec
    mov $msg_e801b, %si
    call puts
    pop %ax
    movzwl %ax, %eax
    call putdec
    call newline
4:
    call print_bootorder
    mov $msg_pass, %si
    call puts
    cmpb $'H', label + 5        /* "DISK H": hold here, for a monitor to inspect the machine */
    je hold
    mov $0xf4, %dx
    xor %eax, %eax
    outl %eax, %dx
hold:
    cli
    hlt
    jmp hold

fail_int13:
    mov $msg_int13_fail, %si
    call puts
    movzbl %ah, %eax
    call puthex8
    call newline
    jmp fail_exit
fail_past_end:
    mov $msg_past_end_ok, %si
    call puts
    jmp fail_exit

/* edd_read: INT 13h AH=42h with the DAP (count and LBA set by the caller), buffer 0000:a000. */
edd_read:
    movw $0xa000, dap_offset
    movw $0, dap_segment
    movl $0, dap_lba + 4
    mov $0x42, %ah
    mov boot_drive, %dl
    mov $dap, %si
    int $0x13
    ret

/* chs_read: one sector, LBA in EAX, to 0000:a000 through INT 13h AH=02. */
chs_read:
    xor %edx, %edx
    movzwl spt, %ecx
    div %ecx                    /* EAX = LBA / spt, EDX = LBA % spt */
    inc %dx
    mov %dl, %cl                /* sector (1-based) */
    xor %edx, %edx
    movzbl heads, %ebx
    div %ebx                    /* EAX = cylinder, EDX = head */
    mov %dl, %dh
    mov %al, %ch
    shl $6, %ah
    or %ah, %cl
    mov boot_drive, %dl
    mov $0xa000, %bx
    mov $0x0201, %ax
    int $0x13
    ret

/* check_mark: the sector at DS:DI must start with "SECTOR <EAX>"; prints what it finds. */
check_mark:
    push %eax
    push %si
    push %di
    mov $msg_mark, %si
    call puts
    call putdec
    mov $msg_reads, %si
    call puts
    mov %di, %si
    mov $16, %cx
1:  lodsb
    test %al, %al
    jz 2f
    call putc
    loop 1b
2:  call newline
    /* Compare with the text putdec_buf holds for EAX. */
    mov %di, %si
    mov $mark_prefix, %bx
3:  mov (%bx), %al
    test %al, %al
    jz 4f
    cmp (%si), %al
    jne 5f
    inc %bx
    inc %si
    jmp 3b
4:  mov $dec_text, %bx
6:  mov (%bx), %al
    test %al, %al
    jz 7f
    cmp (%si), %al
    jne 5f
    inc %bx
    inc %si
    jmp 6b
7:  pop %di
    pop %si
    pop %eax
    ret
5:  mov $msg_bad_mark, %si
    call puts
    jmp fail_exit

/* putdec: EAX in decimal (also left in dec_text, NUL-terminated). */
putdec:
    push %eax
    push %ebx
    push %ecx
    push %edx
    push %di
    mov $dec_end, %di
    movb $0, (%di)
    mov $10, %ebx
1:  xor %edx, %edx
    div %ebx
    add $'0', %dl
    dec %di
    mov %dl, (%di)
    test %eax, %eax
    jnz 1b
    /* Move the digits to dec_text. */
    mov $dec_text, %bx
2:  mov (%di), %al
    mov %al, (%bx)
    inc %di
    inc %bx
    test %al, %al
    jnz 2b
    mov $dec_text, %si
    call puts
    pop %di
    pop %edx
    pop %ecx
    pop %ebx
    pop %eax
    ret

/* print_bootorder: fw_cfg's file directory (selector 0x19) searched for "bootorder", whose
   lines are printed (the firmware paths QEMU built from bootindex=). */
print_bootorder:
    mov $0x510, %dx
    mov $0x19, %ax
    outw %ax, %dx
    mov $0x511, %dx
    call fw_be32
    mov %eax, %ecx              /* file count */
1:  jecxz 9f
    call fw_be32
    mov %eax, fw_size
    call fw_be16
    mov %ax, fw_select
    call fw_be16
    mov $fw_name, %di
    push %cx
    mov $56, %cx
2:  inb %dx, %al
    mov %al, (%di)
    inc %di
    loop 2b
    pop %cx
    mov $fw_name, %si
    mov $name_bootorder, %bx
3:  mov (%bx), %al
    cmp (%si), %al
    jne 4f
    test %al, %al
    jz 5f
    inc %si
    inc %bx
    jmp 3b
4:  dec %ecx
    jmp 1b
5:  mov $msg_bootorder, %si
    call puts
    mov fw_size, %eax
    call putdec
    mov $msg_bytes_colon, %si
    call puts
    mov $0x510, %dx
    mov fw_select, %ax
    outw %ax, %dx
    mov $0x511, %dx
    mov fw_size, %ecx
    jecxz 8f
7:  inb %dx, %al
    test %al, %al
    jz 6f
    cmp $'\n', %al
    jne 6f
    mov $' ', %al
6:  test %al, %al
    jz 10f
    call putc
10: dec %ecx
    jnz 7b
8:  call newline
9:  ret

fw_be32:
    xor %eax, %eax
    push %cx
    mov $4, %cx
1:  shl $8, %eax
    inb %dx, %al
    loop 1b
    pop %cx
    ret
fw_be16:
    xor %eax, %eax
    inb %dx, %al
    shl $8, %ax
    inb %dx, %al
    ret

msg_stage2: .asciz "stage 2 running\n"
msg_params: .asciz "int13 08: heads "
msg_sectors: .asciz " sectors/track "
msg_cylinders: .asciz " cylinders "
msg_edd: .asciz "int13 41: edd version "
msg_edd_features: .asciz " features "
msg_total: .asciz "int13 48: sectors "
msg_bytes: .asciz " bytes/sector "
msg_mark: .asciz "sector "
msg_reads: .asciz " reads: "
mark_prefix: .asciz "SECTOR "
msg_bad_mark: .asciz "FAIL bootdisk: wrong sector contents\n"
msg_past_end: .asciz "read past the end fails with "
msg_past_end_ok: .asciz "FAIL bootdisk: a read past the end succeeded\n"
msg_int13_fail: .asciz "FAIL bootdisk: int13 error "
msg_int12: .asciz "int12: "
msg_kib: .asciz " KiB\n"
msg_e820: .asciz "e820: "
msg_len: .asciz " len "
msg_type: .asciz " type "
msg_e801: .asciz "e801: "
msg_e801b: .asciz " KiB, 64 KiB blocks "
msg_bootorder: .asciz "bootorder "
msg_bytes_colon: .asciz " bytes: "
msg_pass: .asciz "PASS bootdisk\n"
name_bootorder: .asciz "bootorder"

    .align 4
dap:
    .byte 0x10, 0
dap_count: .word 0
dap_offset: .word 0
dap_segment: .word 0
dap_lba: .long 0, 0
spt: .word 0
heads: .byte 0
    .align 4
total_sectors: .long 0
fw_size: .long 0
fw_select: .word 0
edd_params: .skip 0x1e
e820_entry: .skip 24
dec_text: .skip 12
dec_buf: .skip 11
dec_end: .byte 0
fw_name: .skip 57
    .org 16 * 512
