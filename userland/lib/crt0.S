// Program entry. The kernel starts a program with the SysV initial stack:
// rsp -> argc, argv[0..argc-1], NULL, envp NULL; every other register is
// undefined. rsp is 16-byte aligned here.
    .section .text.start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    xor %ebp, %ebp              // outermost frame: backtraces stop here
    mov (%rsp), %rdi            // argc
    lea 8(%rsp), %rsi           // argv
    mov %edi, __argc(%rip)
    mov %rsi, __argv(%rip)
    and $-16, %rsp              // the calls below start 16-byte aligned + 8
    // Every program is one user thread: register the runtime's upcall
    // entry and stack (lib/thread_upcall.c) before any of its code runs.
    call thread_runtime_init
    mov __argc(%rip), %edi
    mov __argv(%rip), %rsi
    call main
    mov %eax, %edi
    call exit
    ud2                         // exit does not return
    .size _start, . - _start

// Saved for code far from main (messages naming the program). In .data,
// not .bss: every program then has a file-backed writable segment, so the
// three-segment layout of user.ld always holds.
    .data
    .balign 8
    .globl __argv, __argc
__argv: .quad 0
__argc: .long 0

    .section .note.GNU-stack, "", @progbits
