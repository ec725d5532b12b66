"""The waiting init as a program of its own, where the machine runs it (x86_64).

Between `create` and `start` a container's PID 1 only waits: for `start`'s open of exec.fifo,
then it writes its two bytes and executes the program. The interpreter that set the container
up holds ~10 MiB for that wait (4 MiB of it its own: create's memory at the fork); runc's Go
init ~9.5. So once the setup is done and Ready sent, the init executes the few instructions of
ocirt/waiter.S (CODE below) from a sealed memfd, in an ELF made here with this container's
parameters: it holds a few pages, and does what the interpreter would have done (stages._init):
the stop signals end it, the fifo's "0", EXECUTING, the execve with the same argv and
environment, and on a failure the same line on stderr and message to `start`, exit 127.

Only where nothing else has to happen after the wait and before the execve, in the interpreter
(usable()): no startContainer hook, no LSM label (it would apply to this exec, not the
program's), and a seccomp filter, which is in place already, that lets each of its system calls
through unconditionally. Where its execve fails (no memfd, a noexec policy for memfds, a filter
that refuses execveat with an errno) the interpreter goes on waiting as before.
"""

import posix

# ocirt/waiter.S, assembled (`as --64`, the .text section; tests/unit/test_waiter.py compares)
CODE = bytes.fromhex(
    "bbffffffffb89d000000bf0400000031f60f054883ec20488d058e0100004889042448c7442408000000044889442410"
    "48c7442418000000004889e6bf01000000e856010000bf02000000e84c010000bf03000000e842010000bf0f000000e8"
    "38010000488d3555010000bf0d000000e827010000bf19000000e81d0100004883c420b80e000000bf01000000488d35"
    "6c01000031d241ba080000000f05b801010000488b3d66010000488b3567010000ba010008000f054885c00f88840000"
    "0089c3b80100000089df488d3537010000ba010000000f054885c07868b803000000488b3d370100000f05b803000000"
    "488b3d310100000f05b80100000089df488d3502010000ba010000000f05488d35cb000000bf0d000000e87d000000bf"
    "19000000e873000000b83b000000488b3dfb000000488d742408488b0c24488d54cc100f0548f7d8488b0de900000048"
    "39c8480f43c148c1e005480305df0000004989c4b801000000bf02000000498b3424498b5424080f0585db7813b80100"
    "000089df498b742410498b5424180f05b8e7000000bf7f0000000f05b80d00000031d241ba080000000f05c381c78000"
    "0000b8e70000000f050f1f80000000000100000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000007400000000000003000660f1f440000"
)

# the system calls it makes (a seccomp filter must let each through), and the interpreter's
# execveat that starts it
SYSCALLS = (
    "prctl",
    "rt_sigaction",
    "rt_sigprocmask",
    "openat",
    "write",
    "close",
    "execve",
    "exit_group",
    "execveat",
)

BASE = 0x400000  # where the ELF's one segment is mapped (a fixed address: ET_EXEC)
_HEADERS = 64 + 2 * 56  # the ELF header and two program headers; the code follows
AT_FDCWD = -100
TABLE_ERRNOS = 41  # a line of its own for errno 0..40 (all execve returns but ELIBBAD), then
# one for any other
MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_EXEC = 0x1, 0x2, 0x10
# F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
SEALS = 0x1 | 0x2 | 0x4 | 0x8
F_ADD_SEALS = 1024 + 9


def runs_here() -> bool:
    return posix.uname().machine == "x86_64"


def usable(spec, path) -> bool:
    """Whether the init may wait as this program: on x86_64, with a program to execute and
    nothing between the wait and the execve (see the module's docstring)."""
    proc = spec.proc
    if path is None or spec.hooks.get("startContainer"):
        return False
    if proc.apparmor_profile or proc.selinux_label:
        return False
    if spec.seccomp is not None and not spec.seccomp.lets_through(SYSCALLS):
        return False
    return runs_here()


def _le(*fields: "tuple[int, int]") -> bytes:
    """(value, size) pairs as little-endian integers (struct's module is a dlopen the init
    would pay for this alone)."""
    return b"".join(value.to_bytes(size, "little", signed=value < 0) for value, size in fields)


def program(fifo_dir: int, fifo: str, fifo_fd: int, close_fd: int, path: str, failures: list) -> bytes:
    """The ELF: headers, CODE, its parameters (waiter.S says which), the strings and the table.
    `failures`: per errno 0..TABLE_ERRNOS-1, then one for any other, (line, message) bytes."""
    params_at = _HEADERS + len(CODE)  # 8-aligned (CODE's length is)
    strings = bytearray()
    after = params_at + 7 * 8

    def put(data: bytes) -> int:
        at = BASE + after + len(strings)
        strings.extend(data)
        return at

    fifo_at = put(fifo.encode() + b"\0")
    path_at = put(path.encode() + b"\0")
    rows = [(put(line), len(line), put(message), len(message)) for line, message in failures]
    strings.extend(bytes(-len(strings) % 8))
    table_at = BASE + after + len(strings)
    table = b"".join(_le(*((v, 8) for v in row)) for row in rows)
    params = _le(
        (fifo_dir, 8),
        (fifo_at, 8),
        (fifo_fd, 8),
        (close_fd, 8),
        (path_at, 8),
        (len(failures) - 1, 8),
        (table_at, 8),
    )
    size = params_at + len(params) + len(strings) + len(table)
    ident = b"\x7fELF" + bytes((2, 1, 1, 0)) + bytes(8)  # 64-bit, little-endian, version 1, System V
    header = ident + _le(
        (2, 2),  # ET_EXEC
        (62, 2),  # EM_X86_64
        (1, 4),
        (BASE + _HEADERS, 8),  # the entry: the code's first instruction
        (64, 8),  # the program headers, right after this one
        (0, 8),  # no section headers
        (0, 4),
        (64, 2),
        (56, 2),
        (2, 2),
        (0, 2),
        (0, 2),
        (0, 2),
    )
    load = _le(
        (1, 4), (5, 4), (0, 8), (BASE, 8), (BASE, 8), (size, 8), (size, 8), (0x1000, 8)
    )  # PT_LOAD, R+X
    stack = _le((0x6474E551, 4), (6, 4), (0, 8), (0, 8), (0, 8), (0, 8), (0, 8), (16, 8))  # PT_GNU_STACK, RW
    return header + load + stack + CODE + params + bytes(strings) + table


def failure_table(path: str, line_prefix: str = "ocirt init: ") -> list:
    """The (line, message) pairs `program` takes, worded as stages._init words them."""
    from .errors import errno_text

    rows = []
    for err in range(TABLE_ERRNOS):
        if err:
            message = f"{path}: {errno_text(OSError(err, ''))}"
        else:
            message = f"exec {path}: execve returned without running it"
        rows.append(message)
    rows.append(f"{path}: execve failed")
    out = []
    for message in rows:
        data = message.encode(errors="replace")[:4000]
        out.append(((line_prefix + message + "\n").encode(errors="replace"), data))
    return out


def execute(spec, path: str, env: dict, fifo_dir: "int | None") -> None:
    """Become the waiting program; returns (having undone what it did) only where that could
    not be done: the caller then waits itself."""
    import _signal
    import fcntl

    from .stages import STOP_SIGNALS

    fd = -1
    blocked = False
    try:
        try:
            fd = posix.memfd_create("ocirt", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)
        except OSError:  # kernels before 6.3 know no MFD_EXEC
            fd = posix.memfd_create("ocirt", MFD_CLOEXEC | MFD_ALLOW_SEALING)
        if fifo_dir is None:
            data = program(
                AT_FDCWD, f"/proc/self/fd/{spec.fifo_fd}", spec.fifo_fd, -1, path, failure_table(path)
            )
        else:
            data = program(fifo_dir, str(spec.fifo_fd), spec.fifo_fd, fifo_dir, path, failure_table(path))
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view) :]
        fcntl.fcntl(fd, F_ADD_SEALS, SEALS)  # no process may change what PID 1 runs
        posix.set_inheritable(spec.fifo_fd, True)
        if fifo_dir is not None:
            posix.set_inheritable(fifo_dir, True)
        _signal.pthread_sigmask(_signal.SIG_BLOCK, STOP_SIGNALS)
        blocked = True
        posix.execve(fd, spec.proc.args, env)
    except OSError:
        pass
    if blocked:
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, STOP_SIGNALS)
    if fd >= 0:
        posix.close(fd)
