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

from ocirt import seccomp, stages, waiter

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


def _build(fifo="/proc/self/fd/7", fd=7, path="/bin/prog"):
    return waiter.program(fifo.encode(), fd, path.encode(), waiter.errno_texts(), waiter.subjects(fifo, path))


def _pair(data: bytes, address: int) -> bytes:
    """The bytes a (pointer, length) pair at `address` points at."""
    at = address - waiter.BASE
    return data[_u(data, at) - waiter.BASE :][: _u(data, at + 8)]


def test_the_elf_and_its_parameters_read_back():
    data = _build()
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
    assert params % 8 == 0
    assert _c_string(data, _u(data, params)) == b"/proc/self/fd/7"
    assert _u(data, params + 8) == 7
    assert _c_string(data, _u(data, params + 16)) == b"/bin/prog"
    assert _u(data, params + 24) == waiter.ERRNOS
    texts = _u(data, params + 32)
    assert [_pair(data, texts + 16 * n) for n in range(waiter.ERRNOS + 1)] == waiter.errno_texts()
    named = [_pair(data, _u(data, params + 40 + 8 * n)) for n in range(4)]
    assert named == [b"/proc/self/fd/7", b"system call failed", b"/bin/prog", b"exec /bin/prog"]


@pytest.mark.parametrize(
    "step,exc",
    [
        (0, OSError(13, os.strerror(13), "/proc/self/fd/7")),  # the fifo's open
        (1, OSError(32, os.strerror(32))),  # a write to it: no file named
        (2, OSError(2, os.strerror(2), "/bin/prog")),  # the execve
        (2, OSError(80, os.strerror(80), "/bin/prog")),  # ELIBBAD
    ],
)
def test_the_failure_words_are_the_interpreters(step, exc):
    """stages._init reports `ocirt init: <message>` on stderr and the message to start; the
    program puts the same together from what the step names and the errno's text."""
    named, texts = waiter.subjects("/proc/self/fd/7", "/bin/prog"), waiter.errno_texts()
    assert named[step] + b": " + texts[exc.errno] == stages._exec_failure(exc, "/bin/prog").encode()


def test_an_execve_that_returned_is_worded_as_the_interpreter_words_it():
    named, texts = waiter.subjects("/f", "/bin/prog"), waiter.errno_texts()
    assert named[3] + b": " + texts[0] == stages._exec_failure(OSError(0, ""), "/bin/prog").encode()
    assert texts[-1] == b"unknown error" and len(texts) == waiter.ERRNOS + 1


def _filter(cfg):
    return seccomp.compile(cfg)


ALL = list(waiter.SYSCALLS + waiter.STARTING)


def _cfg(default: str, *rules) -> dict:
    """A seccomp section: `default` for what no rule names, and the rules, each (names, action)
    or (names, action, (argument index, value)) for one compared equal (the SCMP_ prefixes left
    out)."""
    syscalls = []
    for names, action, *arg in rules:
        rule = {"names": list(names), "action": f"SCMP_ACT_{action}"}
        if arg:
            rule["args"] = [{"index": arg[0][0], "value": arg[0][1], "op": "SCMP_CMP_EQ"}]
        syscalls.append(rule)
    return {"defaultAction": f"SCMP_ACT_{default}", **({"syscalls": syscalls} if syscalls else {})}


@pytest.mark.parametrize(
    "cfg,lets",
    [
        (_cfg("ALLOW"), True),
        (_cfg("ALLOW", (["mkdir"], "ERRNO")), True),
        (_cfg("ALLOW", (["write"], "LOG")), True),
        (_cfg("ALLOW", (["writev"], "ERRNO")), False),
        # the interpreter's way to it may fail with an errno (it then waits itself) ...
        (_cfg("ALLOW", (["execveat"], "ERRNO")), True),
        (_cfg("ALLOW", (["memfd_create"], "ERRNO")), True),
        # ... but not kill it
        (_cfg("ALLOW", (["memfd_create"], "KILL_PROCESS")), False),
        (_cfg("ALLOW", (["ioctl"], "TRAP")), False),
        (_cfg("ERRNO", (waiter.SYSCALLS, "ALLOW")), True),
        (_cfg("ERRNO", (waiter.SYSCALLS[1:], "ALLOW")), False),
        (_cfg("KILL", (ALL, "ALLOW")), True),
        (_cfg("KILL", (waiter.SYSCALLS, "ALLOW")), False),
        # allowed only for some arguments: not unconditionally
        (_cfg("KILL", (ALL, "ALLOW"), (["write"], "ERRNO", (0, 2))), False),
        (_cfg("KILL", ([n for n in ALL if n != "fcntl"], "ALLOW"), (["fcntl"], "ALLOW", (1, 1033))), False),
        (_cfg("ERRNO", (waiter.SYSCALLS[1:], "ALLOW"), (["prctl"], "ALLOW", (0, 4))), False),
    ],
)
def test_a_filter_lets_the_program_through_only_unconditionally(cfg, lets):
    assert _filter(cfg).lets_through(waiter.SYSCALLS, waiter.STARTING) is lets


CAPS = ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"]


def _caps(**sets):
    return {
        name: sets.get(name, []) for name in ("bounding", "effective", "permitted", "inheritable", "ambient")
    }


class _Spec:
    def __init__(
        self, hooks=None, seccomp=None, new=("pid", "mount"), join=(), uid=0, capabilities=None, **proc
    ):
        from ocirt.namespaces import Namespaces

        self.hooks = hooks or {}
        self.seccomp = seccomp
        self.ns = Namespaces(new=list(new), join=list(join))
        self.last_cap = 40
        fields = {"apparmor_profile": None, "selinux_label": None, "uid": uid, "capabilities": capabilities}
        self.proc = type("P", (), {**fields, "cap_allowed": -1, **proc})()


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


@pytest.mark.parametrize(
    "new,join",
    [
        (("mount",), ()),  # the runtime's pid namespace
        (("mount",), (("pid", "/proc/1/ns/pid"),)),  # another's
        (("pid", "mount", "user"), ()),  # a user namespace: the memory would be the container's
        (("pid", "mount"), (("user", "/proc/1/ns/user"),)),
        (("pid",), ()),  # no mount namespace: chrooted in the runtime's
    ],
)
def test_not_usable_where_the_container_could_reach_it(new, join):
    assert not waiter.usable(_Spec(new=new, join=join), "/bin/true")


@pytest.mark.parametrize(
    "uid,caps,kept",
    [
        (0, None, True),  # every set empty
        (0, _caps(bounding=CAPS, effective=CAPS, permitted=CAPS), True),  # docker's and runc's shape
        (0, _caps(bounding=CAPS, permitted=CAPS[:1]), False),  # root gains the bounding set
        (0, _caps(bounding=CAPS, permitted=CAPS, inheritable=["CAP_SYS_ADMIN"]), False),
        (1000, None, True),
        (1000, _caps(bounding=CAPS, effective=CAPS, permitted=CAPS), False),  # keeps only ambient
        (1000, _caps(bounding=CAPS, permitted=CAPS, inheritable=CAPS, ambient=CAPS), True),
        (1000, _caps(bounding=CAPS, permitted=CAPS, inheritable=CAPS, ambient=CAPS[:2]), False),
    ],
)
def test_usable_only_where_an_execve_leaves_the_capabilities_as_they_are(uid, caps, kept):
    assert waiter.usable(_Spec(uid=uid, capabilities=caps), "/bin/true") is (kept and X86_64)


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
                fifo = f"/proc/self/fd/{fd}"
                data = waiter.program(
                    fifo.encode(), fd, path.encode(), waiter.errno_texts(), waiter.subjects(fifo, path)
                )
                mem = os.memfd_create("ocirt", os.MFD_CLOEXEC)
                os.write(mem, data)
                signal.pthread_sigmask(signal.SIG_BLOCK, (1, 2, 3, 15))
                os.execve(mem, argv, env)
            finally:
                os._exit(99)

    def status(self, field: str) -> str:
        """A field of /proc/PID/status once the child is the program and waits in its open of
        the fifo (before, a fork's own name, or the program's handlers not yet set)."""
        for _ in range(2000):
            with open(f"/proc/{self.pid}/status") as f:
                lines = dict(line.rstrip("\n").split(":\t", 1) for line in f)
            # (a user that is not root reads "0" there: the program is not dumpable)
            with open(f"/proc/{self.pid}/wchan") as f:
                waits = f.read().strip() == "wait_for_partner" or os.geteuid() != 0
            if lines["Name"].startswith("memfd:") and waits:
                return lines[field].strip()
            time.sleep(0.001)
        raise AssertionError("the child never became the program waiting on the fifo")

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
    # ignored: what this process ignores (a Python started by posix_spawn has glibc's own two
    # ignored) but Python's SIGPIPE and SIGXFSZ, which the program gets at their defaults
    with open("/proc/self/status") as f:
        own = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    ignored = own & ~(1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1))
    assert out.read_text() == f"a  bar\nSigBlk:\t0000000000000000\nSigIgn:\t{ignored:016x}\n"


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


def _until_in_openat(pid: int) -> None:
    """Until the process waits in openat (257), as /proc/PID/syscall shows; where that cannot be
    read (the program is not dumpable: a test that is not root), a while."""
    for _ in range(1000):
        try:
            with open(f"/proc/{pid}/syscall") as f:
                if f.read().split()[0] == "257":
                    return
        except PermissionError:
            time.sleep(0.5)
            return
        time.sleep(0.005)
    raise AssertionError("the program never waited on the fifo")


@pytestmark_run
def test_a_start_gone_before_the_byte_is_a_report_not_a_death_by_sigpipe(waiting):
    """The reader opens and closes at once (a start killed): the program's write of "0" gets
    EPIPE (SIGPIPE ignored for it) and it reports as the interpreter would, exit 127; or the
    byte went first and the program ran. Never killed by SIGPIPE."""
    for _ in range(10):
        w = waiting(["true"], {}, shutil.which("true"))
        w.status("Name")
        _until_in_openat(w.pid)  # (a reader gone before that open would leave it waiting)
        os.close(os.open(w.fifo, os.O_RDONLY | os.O_NONBLOCK))
        code = w.wait()
        assert code in (0, 127), code
        if code == 127:
            assert w.stderr() == "ocirt init: system call failed: broken pipe\n"
