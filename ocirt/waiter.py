"""The waiting init as a program of its own, where the machine runs it (x86_64).

Between `create` and `start` a container's PID 1 only waits: for `start`'s open of exec.fifo,
then it writes its two bytes and executes the program. The interpreter that set the container
up holds ~10 MiB for that wait (4 MiB of it its own: create's memory at the fork); runc's Go
init ~9.5. So once the setup is done and Ready sent, the init executes the few instructions of
ocirt/waiter.S (CODE below) from a sealed memfd, in an ELF made here with this container's
parameters: it holds a few pages, and does what the interpreter would have done (stages._init):
the stop signals end it, the fifo's "0", EXECUTING, the execve with the same argv and
environment, and on a failure the same line on stderr and message to `start`, exit 127.

Only where the program's process would be what the interpreter's would have been, and nothing
else has to happen between the wait and the execve (usable()): no startContainer hook; no LSM
label (it would apply to this execve, not the program's); capabilities this execve leaves as
they are (a process that is not root keeps only its ambient set across an execve, and root
gains its inheritable and bounding sets: either would change what the program's own execve
gives it); PID 1 of a pid namespace of its own, in the runtime's user namespace and a mount
namespace (the execve makes the process dumpable until its first instruction, and in a user
namespace its memory the container's: no process the container may already have is let near
it, and it holds nothing of the host but exec.fifo); and a seccomp filter, in place already,
that lets each of the program's system calls through unconditionally and fails the
interpreter's way to it with an errno at worst. Where that way fails (no memfd, a noexec policy
for memfds, an errno from the filter) the interpreter goes on waiting as before.
"""

import posix

from .errors import errno_words
from .paths import fsencode

# ocirt/waiter.S, assembled (`as --64`, the .text section; tests/unit/test_waiter.py compares)
CODE = bytes.fromhex(
    "bbffffffffb89d000000bf0400000031f60f054883ec20488d050c0200004889042448c7442408000000044889442410"
    "48c7442418000000004889e6bf01000000e8d4010000bf02000000e8ca010000bf03000000e8c0010000bf0f000000e8"
    "b6010000488d35cd010000bf0d000000e8a5010000bf19000000e89b0100004883c420b80e000000bf01000000488d35"
    "e401000031d241ba080000000f054c8b2d1b020000b801010000bf9cffffff488b35e2010000ba010008000f054885c0"
    "0f888400000089c34c8b2df9010000b80100000089df488d35a3010000ba010000000f054885c07861b803000000488b"
    "3dab0100000f05b80100000089df488d357c010000ba010000000f05488d3545010000bf0d000000e8fd000000bf1900"
    "0000e8f30000004c8b2da2010000b83b000000488b3d6e010000488d742408488b0c24488d54cc100f0548f7d875074c"
    "8b2d82010000488b0d530100004839c8480f43c148c1e004480305490100004989c4488d35bf000000bf0d000000e897"
    "000000bf19000000e88d0000004883ec50488d05ea0000004889042448c74424080c000000410f1045000f1144241048"
    "8d05d8000000488944242048c744242802000000410f1004240f11442430488d05bb000000488944244048c744244801"
    "000000b814000000bf020000004889e6ba050000000f0585db7813b81400000089df488d742410ba030000000f05b8e7"
    "000000bf7f0000000f05b80d00000031d241ba080000000f05c381c780000000b8e70000000f05900100000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000074000000000000030006f6369727420696e69743a203a200a0f1f8000000000"
)

# the system calls the program makes: a seccomp filter must let each through, whatever the
# arguments
SYSCALLS = (
    "prctl",
    "rt_sigaction",
    "rt_sigprocmask",
    "openat",
    "write",
    "writev",
    "close",
    "execve",
    "exit_group",
)
# those the interpreter makes to start it (execute()): an errno from the filter is a way back
STARTING = ("memfd_create", "write", "fcntl", "ioctl", "rt_sigprocmask", "execveat", "close")

BASE = 0x400000  # where the ELF's one segment is mapped (a fixed address: ET_EXEC)
_HEADERS = 64 + 2 * 56  # the ELF header and two program headers; the code follows
ERRNOS = 134  # errno 0..133 have a text each (Linux's last is 133), any other one text
MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_EXEC = 0x1, 0x2, 0x10
# F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
SEALS = 0x1 | 0x2 | 0x4 | 0x8
F_ADD_SEALS = 1024 + 9
_MESSAGE_MAX = 4000  # what the interpreter writes to `start` at most


def runs_here() -> bool:
    return posix.uname().machine == "x86_64"


def usable(spec, path) -> bool:
    """Whether the init may wait as this program (the module's docstring says when)."""
    proc = spec.proc
    if not runs_here() or path is None or spec.hooks.get("startContainer"):
        return False
    if proc.apparmor_profile or proc.selinux_label:
        return False
    if "pid" not in spec.ns.new or spec.ns.has("user") or not spec.ns.has("mount"):
        return False
    if not _capabilities_kept(spec):
        return False
    return spec.seccomp is None or spec.seccomp.lets_through(SYSCALLS, STARTING)


def _capabilities_kept(spec) -> bool:
    """Whether an execve of a file without capabilities leaves the process's as they are
    (capabilities(7)): root's permitted set becomes inheritable | bounding (| ambient), anyone
    else's the ambient set."""
    from .capabilities import masks

    proc = spec.proc
    caps = masks(proc.capabilities, spec.last_cap, proc.cap_allowed)
    permitted, inheritable = caps["permitted"], caps["inheritable"]
    ambient = caps["ambient"] & permitted & inheritable  # what switch_identity can raise
    after = inheritable | caps["bounding"] | ambient if proc.uid == 0 else ambient
    return after == permitted


def _le(*fields: "tuple[int, int]") -> bytes:
    """(value, size) pairs as little-endian integers (struct's module is a dlopen the init
    would pay for this alone)."""
    return b"".join(value.to_bytes(size, "little", signed=value < 0) for value, size in fields)


def program(fifo: bytes, fifo_fd: int, path: bytes, texts: list, subjects: list) -> bytes:
    """The ELF: headers, CODE, its parameters (waiter.S says which), the strings and tables.
    `texts`: per errno 0..ERRNOS-1, then one for any other; `subjects`: what a failure of the
    fifo's open, of a write to it, of the execve and of an execve returning 0 names."""
    params_at = _HEADERS + len(CODE)  # 8-aligned (CODE's length is)
    data = bytearray()
    after = params_at + 9 * 8

    def put(chunk: bytes) -> int:
        at = BASE + after + len(data)
        data.extend(chunk)
        return at

    def pairs(rows: list) -> int:  # (pointer, length) of each, 8-aligned
        spans = [(put(row), len(row)) for row in rows]
        data.extend(bytes(-len(data) % 8))
        return put(_le(*((v, 8) for span in spans for v in span)))

    fifo_at = put(fifo + b"\0")
    path_at = put(path + b"\0")
    texts_at = pairs(texts)
    subjects_at = pairs(subjects)
    params = _le(
        (fifo_at, 8),
        (fifo_fd, 8),
        (path_at, 8),
        (len(texts) - 1, 8),
        (texts_at, 8),
        *((subjects_at + 16 * n, 8) for n in range(4)),
    )
    size = params_at + len(params) + len(data)
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
    return header + load + stack + CODE + params + bytes(data)


def errno_texts() -> list:
    """Each errno's words as the interpreter's messages have them (errors.errno_text); for 0,
    what stages._exec_failure says of an execve that returned."""
    texts = [b"execve returned without running it"]
    texts += [errno_words(n).encode() for n in range(1, ERRNOS)]
    return texts + [b"unknown error"]


def subjects(fifo: str, path: str) -> list:
    """What stages._init's message names first, for each step that can fail: the fifo's open
    (its path), a write to it (an OSError without a file: errors.describe_oserror's default),
    the execve (the program), an execve that returned (stages._exec_failure)."""
    room = _MESSAGE_MAX - 80  # (the errno's text after it)
    return [
        fsencode(fifo)[:room],
        b"system call failed",
        fsencode(path)[:room],
        b"exec " + fsencode(path)[: room - 5],
    ]


def execute(spec, path: str, env: dict) -> None:
    """Become the waiting program; returns (having undone what it did) only where that could
    not be done: the caller then waits itself."""
    import _signal
    import fcntl

    from .signals import STOP_SIGNALS

    fd = -1
    blocked = False
    try:
        try:
            fd = posix.memfd_create("ocirt", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)
        except OSError:  # kernels before 6.3 know no MFD_EXEC
            fd = posix.memfd_create("ocirt", MFD_CLOEXEC | MFD_ALLOW_SEALING)
        fifo = f"/proc/self/fd/{spec.fifo_fd}"
        data = program(fsencode(fifo), spec.fifo_fd, fsencode(path), errno_texts(), subjects(fifo, path))
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view) :]
        fcntl.fcntl(fd, F_ADD_SEALS, SEALS)  # no process may change what PID 1 runs
        posix.set_inheritable(spec.fifo_fd, True)
        _signal.pthread_sigmask(_signal.SIG_BLOCK, STOP_SIGNALS)
        blocked = True
        posix.execve(fd, spec.proc.args, env)
    except (OSError, ValueError):  # (ValueError: a NUL in argv or env; the interpreter says so)
        pass
    finally:
        if blocked:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, STOP_SIGNALS)
        if fd >= 0:
            posix.close(fd)
