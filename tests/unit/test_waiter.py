"""ocirt.waiter: the waiting init's program (ocirt/waiter.S) and the ELF around it.

The bytes are checked against the listing (assembled again where binutils are installed), the
ELF and its parameters are read back, and the program itself is run (x86_64) outside any
container, by a forked child, with a fifo of the test's own: no root needed. Every child is
reaped; a test that fails while one waits kills it first.
"""

import os
import platform
import shutil
import signal
import subprocess
import time

import pytest

from ocirt import seccomp, waiter
from ocirt.errors import oserror_line

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "ocirt", "waiter.S")
X86_64 = platform.machine() == "x86_64"


@pytest.mark.skipif(not (shutil.which("as") and shutil.which("objcopy")), reason="no binutils")
@pytest.mark.skipif(not X86_64, reason="x86_64 instructions")
def test_code_is_the_listing_assembled(tmp_path):
    obj, raw = tmp_path / "w.o", tmp_path / "w.bin"
    subprocess.run(["as", "--64", "-o", str(obj), SOURCE], check=True)
    relocs = subprocess.run(["objdump", "-r", str(obj)], capture_output=True, text=True, check=True)
    assert "R_X86_64" not in relocs.stdout, "the code must need no relocation"
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
    assert raw.read_bytes() == waiter.CODE


def _u(data: bytes, at: int, size: int = 8, signed: bool = False) -> int:
    return int.from_bytes(data[at : at + size], "little", signed=signed)


def _c_string(data: bytes, address: int) -> bytes:
    at = address - waiter.BASE
    return data[at : data.index(b"\0", at)]


def test_the_elf_and_its_parameters_read_back():
    table = waiter.failure_table("/bin/prog")
    data = waiter.program(-100, "/proc/self/fd/7", 7, -1, "/bin/prog", table)
    assert data[:4] == b"\x7fELF" and data[4:6] == bytes((2, 1))  # 64-bit, little-endian
    assert _u(data, 16, 2) == 2 and _u(data, 18, 2) == 62  # ET_EXEC, x86_64
    entry, phoff, phnum = _u(data, 24), _u(data, 32), _u(data, 56, 2)
    assert (phoff, phnum) == (64, 2)
    load = data[64:120]
    assert _u(load, 0, 4) == 1 and _u(load, 4, 4) == 5  # PT_LOAD, read + execute (never write)
    assert _u(load, 16) == waiter.BASE and _u(load, 32) == _u(load, 40) == len(data)
    assert _u(data, 120, 4) == 0x6474E551 and _u(data, 124, 4) == 6  # the stack: no execute
    code_at = entry - waiter.BASE
    assert data[code_at : code_at + len(waiter.CODE)] == waiter.CODE
    params = code_at + len(waiter.CODE)
    assert _u(data, params, signed=True) == -100
    assert _c_string(data, _u(data, params + 8)) == b"/proc/self/fd/7"
    assert _u(data, params + 16) == 7
    assert _u(data, params + 24, signed=True) == -1
    assert _c_string(data, _u(data, params + 32)) == b"/bin/prog"
    assert _u(data, params + 40) == waiter.TABLE_ERRNOS == len(table) - 1
    rows = _u(data, params + 48) - waiter.BASE
    for n, (line, message) in enumerate(table):
        row = rows + 32 * n
        assert data[_u(data, row) - waiter.BASE :][: _u(data, row + 8)] == line
        assert data[_u(data, row + 16) - waiter.BASE :][: _u(data, row + 24)] == message


def test_the_failure_lines_are_the_interpreters():
    """stages._init reports `ocirt init: <what _exec_failure says>` on stderr and the message
    alone to start."""
    table = waiter.failure_table("/bin/prog")
    err = OSError(2, os.strerror(2), "/bin/prog")
    assert table[2] == (f"ocirt init: {oserror_line(err)}\n".encode(), oserror_line(err).encode())
    assert table[0][1] == b"exec /bin/prog: execve returned without running it"
    assert table[-1][1] == b"/bin/prog: execve failed"


def _filter(cfg):
    return seccomp.compile(cfg)


@pytest.mark.parametrize(
    "cfg,lets",
    [
        ({"defaultAction": "SCMP_ACT_ALLOW"}, True),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
            },
            True,
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["write"], "action": "SCMP_ACT_LOG"}]},
            True,
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}],
            },
            False,
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": list(waiter.SYSCALLS), "action": "SCMP_ACT_ALLOW"}],
            },
            True,
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": list(waiter.SYSCALLS[1:]), "action": "SCMP_ACT_ALLOW"}],
            },
            False,
        ),
        (
            {
                "defaultAction": "SCMP_ACT_KILL",
                "syscalls": [
                    {"names": list(waiter.SYSCALLS), "action": "SCMP_ACT_ALLOW"},
                    {
                        "names": ["write"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}],
                    },
                ],
            },
            False,
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {"names": list(waiter.SYSCALLS[1:]), "action": "SCMP_ACT_ALLOW"},
                    {
                        "names": ["prctl"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 4, "op": "SCMP_CMP_EQ"}],
                    },
                ],
            },
            False,
        ),
    ],
)
def test_a_filter_lets_the_program_through_only_unconditionally(cfg, lets):
    assert _filter(cfg).lets_through(waiter.SYSCALLS) is lets


class _Spec:
    def __init__(self, hooks=None, seccomp=None, **proc):
        self.hooks = hooks or {}
        self.seccomp = seccomp
        self.proc = type("P", (), {"apparmor_profile": None, "selinux_label": None, **proc})()


def test_usable_only_with_nothing_left_for_the_interpreter():
    assert waiter.usable(_Spec(), "/bin/true") is X86_64
    assert not waiter.usable(_Spec(), None)  # no process: start reports it
    assert not waiter.usable(_Spec(hooks={"startContainer": [{"path": "/x"}]}), "/bin/true")
    assert not waiter.usable(_Spec(apparmor_profile="p"), "/bin/true")
    assert not waiter.usable(_Spec(selinux_label="l"), "/bin/true")
    deny = _filter(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["openat"], "action": "SCMP_ACT_KILL"}]}
    )
    assert not waiter.usable(_Spec(seccomp=deny), "/bin/true")


class Waiting:
    """A forked child that becomes the program, as stages._init makes the init do (the stop
    signals blocked, exec.fifo's O_PATH fd inheritable), waiting on a fifo in tmp_path."""

    def __init__(self, tmp_path, argv, env, path):
        self.fifo = str(tmp_path / "exec.fifo")
        os.mkfifo(self.fifo)
        self.err = str(tmp_path / "stderr")
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                fd = os.open(self.fifo, os.O_PATH)
                os.set_inheritable(fd, True)
                out = os.open(self.err, os.O_WRONLY | os.O_CREAT, 0o600)
                os.dup2(out, 2)
                data = waiter.program(-100, f"/proc/self/fd/{fd}", fd, -1, path, waiter.failure_table(path))
                mem = os.memfd_create("ocirt", os.MFD_CLOEXEC)
                os.write(mem, data)
                signal.pthread_sigmask(signal.SIG_BLOCK, (1, 2, 3, 15))
                os.execve(mem, argv, env)
            finally:
                os._exit(99)

    def status(self, field: str) -> str:
        for _ in range(200):  # until the execve is done (a fork's own name before it)
            with open(f"/proc/{self.pid}/status") as f:
                lines = dict(line.rstrip("\n").split(":\t", 1) for line in f)
            if lines["Name"].startswith("memfd:"):
                return lines[field].strip()
            time.sleep(0.01)
        raise AssertionError("the child never became the program")

    def start(self) -> bytes:
        """Open the fifo as `start` does; everything the program wrote to it."""
        fd = os.open(self.fifo, os.O_RDONLY)
        out = b""
        try:
            while chunk := os.read(fd, 4096):
                out += chunk
        finally:
            os.close(fd)
        return out

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        return os.waitstatus_to_exitcode(status)

    def stderr(self) -> str:
        with open(self.err) as f:
            return f.read()


@pytest.fixture
def waiting(tmp_path):
    made = []

    def make(*args):
        d = tmp_path / str(len(made))
        d.mkdir()
        w = Waiting(d, *args)
        made.append(w)
        return w

    yield make
    for w in made:
        if w.pid:
            os.kill(w.pid, signal.SIGKILL)
            os.waitpid(w.pid, 0)


pytestmark_run = pytest.mark.skipif(not X86_64, reason="the program is x86_64's")


@pytestmark_run
def test_the_program_waits_small_then_executes_with_its_argv_and_environment(waiting, tmp_path):
    out = tmp_path / "out"
    w = waiting(
        ["sh", "-c", f'echo "$0 $1 $FOO" > {out}; grep -E "^Sig(Blk|Ign)" /proc/self/status >> {out}', "a"],
        {"FOO": "bar", "PATH": "/bin:/usr/bin"},
        shutil.which("sh"),
    )
    assert int(w.status("VmRSS").split()[0]) < 256
    assert w.status("SigBlk") == "0000000000000000"  # the stop signals handled, not blocked
    assert int(w.status("SigCgt"), 16) == 0x4007
    assert w.start() == b"0\0"
    assert w.wait() == 0
    assert out.read_text() == "a  bar\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"


@pytestmark_run
def test_a_failed_execve_is_reported_to_start_and_stderr(waiting):
    w = waiting(["prog"], {}, "/no/such/prog")
    assert w.start() == b"0\0/no/such/prog: no such file or directory"
    assert w.wait() == 127
    assert w.stderr() == "ocirt init: /no/such/prog: no such file or directory\n"


@pytestmark_run
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM])
def test_a_stop_signal_ends_it_as_128_plus_the_signal(waiting, sig):
    w = waiting(["true"], {}, shutil.which("true"))
    w.status("Name")
    os.kill(w.pid, sig)
    assert w.wait() == 128 + sig


@pytestmark_run
def test_a_stop_signal_sent_before_its_handlers_is_kept(waiting):
    """Sent while the interpreter still runs (blocked there): pending across the execve, then
    delivered to the program's handler."""
    w = waiting(["true"], {}, shutil.which("true"))
    os.kill(w.pid, signal.SIGTERM)  # maybe before the execve, maybe after: either way it ends
    assert w.wait() in (128 + signal.SIGTERM, -signal.SIGTERM)
