/* The waiting init (x86_64): what a created container's PID 1 runs between `create` and
 * `start` in place of the interpreter that set the container up. ocirt/waiter.py holds these
 * instructions as bytes (CODE), wraps them in an ELF with the container's parameters after
 * them, and tests/unit/test_waiter.py assembles this file again (where `as` is installed) and
 * compares. Rebuild CODE after a change:
 *
 *     as --64 -o w.o ocirt/waiter.S && objcopy -O binary -j .text w.o w.bin
 *
 * It is started with the program's own argv and environment, the stop signals (1, 2, 3, 15)
 * blocked, exec.fifo's O_PATH fd open. No libc, no relocation: everything it reads is
 * RIP-relative, the parameters right after the code (`params`, filled by waiter.py):
 *
 *     params+0   the path of exec.fifo (through /proc/self/fd), as a pointer
 *     params+8   exec.fifo's O_PATH fd, closed before the program runs
 *     params+16  the program's resolved path, as a pointer
 *     params+24  N: the errno texts are for errno 0..N-1, then one for any other
 *     params+32  the texts, as a pointer: per errno (pointer, length)
 *     params+40  what the interpreter names when the fifo's open fails, as a pointer to
 *                (pointer, length); +48 when a write to the fifo fails; +56 when the execve
 *                fails; +64 when it returns 0 (a seccomp errnoRet 0)
 */
	.intel_syntax noprefix
	.text
	.globl _start
_start:
	mov	ebx, -1			/* no fifo opened yet */
	mov	eax, 157		/* prctl(PR_SET_DUMPABLE, 0): what the init was; the   */
	mov	edi, 4			/* execve made it dumpable again (no container process */
	xor	esi, esi		/* may ptrace it or open its /proc/1/fd)               */
	syscall

	/* The stop signals end it, exit 128+signal (as the interpreter's handlers did); a
	 * struct sigaction on the stack: handler, SA_RESTORER, restorer (never used), mask. */
	sub	rsp, 32
	lea	rax, [rip + stop]
	mov	[rsp], rax
	mov	qword ptr [rsp + 8], 0x04000000
	mov	[rsp + 16], rax
	mov	qword ptr [rsp + 24], 0
	mov	rsi, rsp
	mov	edi, 1
	call	sigact
	mov	edi, 2
	call	sigact
	mov	edi, 3
	call	sigact
	mov	edi, 15
	call	sigact
	lea	rsi, [rip + ign_act]	/* SIGPIPE, SIGXFSZ ignored while it writes: a `start` */
	mov	edi, 13			/* gone is an EPIPE, not its death                     */
	call	sigact
	mov	edi, 25
	call	sigact
	add	rsp, 32
	mov	eax, 14			/* rt_sigprocmask(SIG_UNBLOCK, stop signals): one sent */
	mov	edi, 1			/* before the handlers were in was kept pending        */
	lea	rsi, [rip + stop_set]
	xor	edx, edx
	mov	r10d, 8
	syscall

	/* openat(AT_FDCWD, fifo, O_WRONLY|O_CLOEXEC): returns once `start` opens it for reading */
	mov	r13, [rip + params + 40]	/* (r13: what a failure names) */
	mov	eax, 257
	mov	edi, -100
	mov	rsi, [rip + params]
	mov	edx, 0x80001
	syscall
	test	rax, rax
	js	fail
	mov	ebx, eax
	mov	r13, [rip + params + 48]
	mov	eax, 1			/* write(fifo, "0", 1) */
	mov	edi, ebx
	lea	rsi, [rip + zero]
	mov	edx, 1
	syscall
	test	rax, rax
	js	fail
	mov	eax, 3			/* close(exec.fifo's O_PATH fd) */
	mov	rdi, [rip + params + 8]
	syscall
	mov	eax, 1			/* write(fifo, EXECUTING, 1); an error is start's end: */
	mov	edi, ebx		/* the program runs all the same                       */
	lea	rsi, [rip + executing]
	mov	edx, 1
	syscall
	lea	rsi, [rip + dfl_act]	/* SIGPIPE, SIGXFSZ back to their default actions */
	mov	edi, 13
	call	sigact
	mov	edi, 25
	call	sigact

	/* execve(program, this process's argv, its environment) */
	mov	r13, [rip + params + 56]
	mov	eax, 59
	mov	rdi, [rip + params + 16]
	lea	rsi, [rsp + 8]
	mov	rcx, [rsp]
	lea	rdx, [rsp + rcx*8 + 16]
	syscall

	/* Here only where a system call failed (rax = -errno; 0: an execve that returned 0):
	 * "ocirt init: <what>: <errno text>" on stderr, "<what>: <errno text>" to `start`
	 * through the fifo (as the interpreter words them), exit 127. */
fail:
	neg	rax
	jnz	1f
	mov	r13, [rip + params + 64]
1:	mov	rcx, [rip + params + 24]
	cmp	rax, rcx
	cmovae	rax, rcx
	shl	rax, 4
	add	rax, [rip + params + 32]
	mov	r12, rax		/* the errno's text: (pointer, length) */
	lea	rsi, [rip + ign_act]	/* a reader gone: EPIPE, not death, for the report */
	mov	edi, 13
	call	sigact
	mov	edi, 25
	call	sigact
	sub	rsp, 80			/* five iovecs: "ocirt init: ", what, ": ", text, "\n" */
	lea	rax, [rip + prefix]
	mov	[rsp], rax
	mov	qword ptr [rsp + 8], 12
	movups	xmm0, [r13]		/* what: its (pointer, length), 16 bytes at once */
	movups	[rsp + 16], xmm0
	lea	rax, [rip + colon]
	mov	[rsp + 32], rax
	mov	qword ptr [rsp + 40], 2
	movups	xmm0, [r12]		/* the errno's text */
	movups	[rsp + 48], xmm0
	lea	rax, [rip + newline]
	mov	[rsp + 64], rax
	mov	qword ptr [rsp + 72], 1
	mov	eax, 20			/* writev(2, the five) */
	mov	edi, 2
	mov	rsi, rsp
	mov	edx, 5
	syscall
	test	ebx, ebx
	js	quit
	mov	eax, 20			/* writev(fifo, the middle three) */
	mov	edi, ebx
	lea	rsi, [rsp + 16]
	mov	edx, 3
	syscall
quit:
	mov	eax, 231		/* exit_group(127) */
	mov	edi, 127
	syscall

sigact:					/* rt_sigaction(edi, rsi, NULL, 8) */
	mov	eax, 13
	xor	edx, edx
	mov	r10d, 8
	syscall
	ret

stop:					/* the stop signals' handler: exit_group(128 + signal) */
	add	edi, 128
	mov	eax, 231
	syscall

	.balign	8
ign_act:
	.quad	1, 0, 0, 0		/* SIG_IGN */
dfl_act:
	.quad	0, 0, 0, 0		/* SIG_DFL */
stop_set:
	.quad	0x4007			/* signals 1, 2, 3 and 15 */
zero:
	.byte	0x30
executing:
	.byte	0			/* ocirt.state.EXECUTING */
prefix:
	.ascii	"ocirt init: "
colon:
	.ascii	": "
newline:
	.ascii	"\n"
	.balign	8
params:
