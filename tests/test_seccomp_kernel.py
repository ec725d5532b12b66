"""ocirt.seccomp against the real kernel: the parent compiles, a forked child installs the filter
and tries syscalls, the parent reads what happened (and plays the seccomp agent for NOTIFY).

Root (loading a filter without no_new_privs needs CAP_SYS_ADMIN, as in a container's init).
Parallel-safe: every test has its own directories and sockets; every child is reaped, and killed
first if the test fails while it runs. Children never dump core (SIGSYS would).
"""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import tempfile

import pytest

from ocirt import seccomp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_ADMIN to load a filter)")

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.personality.argtypes = [ctypes.c_ulong]
LIBC.unshare.argtypes = [ctypes.c_int]
LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
PR_SET_DUMPABLE = 4
CLONE_NEWUTS = 0x04000000

# ioctls on the notify fd (linux/seccomp.h): struct seccomp_notif is 80 bytes, the response 24
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101

NO_SUCH_PID = 0x7FFFFFF0  # above any pid_max: getpriority(PRIO_PROCESS, it) is ESRCH when allowed


def nr(name: str) -> int:
    _, lib = seccomp._load()
    return lib.seccomp_syscall_resolve_name(name.encode())


def attempt(fn) -> int | str:
    """ "ok", or the errno the call failed with."""
    try:
        fn()
    except OSError as e:
        return e.errno
    return "ok"


def libc_call(fn, *args) -> int | str:
    ctypes.set_errno(0)
    if fn(*args) == -1:
        return ctypes.get_errno()
    return "ok"


class Child:
    """A forked child that installs `flt`, runs body(notify_fd) and reports its result as JSON."""

    def __init__(self, flt, body):
        r, w = os.pipe2(os.O_CLOEXEC)
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            code = 3
            try:
                os.close(r)
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
                fd = flt.install()
                out = json.dumps({"result": body(fd)})
                os.write(w, out.encode())
                code = 0
            except BaseException as e:  # noqa: BLE001 - everything is reported to the test
                with contextlib.suppress(BaseException):
                    os.write(w, json.dumps({"error": repr(e)}).encode())
            finally:
                os._exit(code)
        os.close(w)
        self.r = r
        self.status = None

    def finish(self):
        """Wait for the child: (wait status, what body returned or None)."""
        chunks = []
        while chunk := os.read(self.r, 65536):
            chunks.append(chunk)
        os.close(self.r)
        self.r = None
        _, self.status = os.waitpid(self.pid, 0)
        report = json.loads(b"".join(chunks)) if chunks else {}
        assert "error" not in report, report["error"]
        return self.status, report.get("result")

    def reap(self):
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _, self.status = os.waitpid(self.pid, 0)
        if self.r is not None:
            os.close(self.r)
            self.r = None


@contextlib.contextmanager
def child(flt, body):
    c = Child(flt, body)
    try:
        yield c
    finally:
        c.reap()


def run(cfg: dict, body):
    flt = seccomp.compile(cfg)
    with child(flt, body) as c:
        return c.finish()


def run_ok(cfg: dict, body):
    status, result = run(cfg, body)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    return result


@pytest.fixture
def scratch():
    d = tempfile.mkdtemp(prefix="ocirt-seccomp-", dir="/tmp")  # short: AF_UNIX paths are limited
    yield d
    shutil.rmtree(d, ignore_errors=True)


def allow(*rules, **top) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **top}


MKDIR = ["mkdir", "mkdirat"]


# --- actions -------------------------------------------------------------------------------------


def test_errno_defaults_to_eperm(scratch):
    cfg = allow({"names": MKDIR, "action": "SCMP_ACT_ERRNO"})
    result = run_ok(
        cfg,
        lambda fd: [
            fd,
            attempt(lambda: os.mkdir(f"{scratch}/d")),
            attempt(lambda: os.rmdir(f"{scratch}/missing")),
        ],
    )
    assert result == [None, errno.EPERM, errno.ENOENT]
    assert not os.path.exists(f"{scratch}/d")


def test_errno_ret(scratch):
    cfg = allow({"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    assert run_ok(cfg, lambda fd: attempt(lambda: os.mkdir(f"{scratch}/d"))) == errno.ENOSYS


def test_errno_ret_zero_skips_the_call(scratch):
    cfg = allow({"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": 0})
    assert run_ok(cfg, lambda fd: attempt(lambda: os.mkdir(f"{scratch}/d"))) == "ok"
    assert not os.path.exists(f"{scratch}/d")


def test_trace_without_tracer_is_enosys(scratch):
    cfg = allow({"names": MKDIR, "action": "SCMP_ACT_TRACE", "errnoRet": 5})
    assert run_ok(cfg, lambda fd: attempt(lambda: os.mkdir(f"{scratch}/d"))) == errno.ENOSYS


def test_log_lets_the_call_through(scratch):
    cfg = allow({"names": MKDIR, "action": "SCMP_ACT_LOG"}, flags=["SECCOMP_FILTER_FLAG_LOG"])
    assert run_ok(cfg, lambda fd: attempt(lambda: os.mkdir(f"{scratch}/d"))) == "ok"
    assert os.path.isdir(f"{scratch}/d")


@pytest.mark.parametrize(
    "action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"]
)
def test_killed_by_sigsys(action):
    status, result = run(allow({"names": ["getsid"], "action": action}), lambda fd: os.getsid(0))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, status
    assert result is None


def test_default_errno_ret_with_an_allow_list(scratch):
    # default deny with ENOTSUP: only what this child needs after install() is allowed
    cfg = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.ENOTSUP,
        "syscalls": [
            {
                "names": [
                    "write",
                    "exit_group",
                    "exit",
                    "brk",
                    "mmap",
                    "munmap",
                    "mremap",
                    "madvise",
                    "rt_sigreturn",
                    "rt_sigprocmask",
                    "rt_sigaction",
                    "futex",
                    "getpid",
                    "close",
                    "getsid",
                ],
                "action": "SCMP_ACT_ALLOW",
            }
        ],
    }
    result = run_ok(
        cfg,
        lambda fd: [
            attempt(lambda: os.mkdir(f"{scratch}/d")),
            attempt(lambda: os.getsid(0)),
            attempt(lambda: os.rmdir(f"{scratch}/missing")),
        ],
    )
    assert result == [errno.ENOTSUP, "ok", errno.ENOTSUP]


# --- arguments -----------------------------------------------------------------------------------


def test_eq_on_an_argument():
    cfg = allow(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EDOM,
            "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}],
        }
    )
    result = run_ok(cfg, lambda fd: [libc_call(LIBC.personality, 0xFFFFFFFF), libc_call(LIBC.personality, 0)])
    assert result == [errno.EDOM, "ok"]


def getpriority(which, who):
    return lambda: os.getpriority(which, who)


def test_masked_eq_value_is_the_mask_value_two_the_datum():
    cfg = allow(
        {
            "names": ["getpriority"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EBADFD,
            "args": [{"index": 1, "value": 0xFFFF0000, "valueTwo": 0x7FFF0000, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    )
    result = run_ok(
        cfg,
        lambda fd: [
            attempt(getpriority(os.PRIO_PROCESS, 0x7FFF1234)),
            attempt(getpriority(os.PRIO_PROCESS, 0x7FFE1234)),
            attempt(getpriority(os.PRIO_PROCESS, 0)),
        ],
    )
    assert result == [errno.EBADFD, errno.ESRCH, "ok"]


def test_conditions_on_distinct_arguments_all_have_to_match():
    cfg = allow(
        {
            "names": ["getpriority"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EBADFD,
            "args": [
                {"index": 0, "value": os.PRIO_PROCESS, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": NO_SUCH_PID, "op": "SCMP_CMP_GE"},
            ],
        }
    )
    result = run_ok(
        cfg,
        lambda fd: [
            attempt(getpriority(os.PRIO_PROCESS, NO_SUCH_PID + 1)),
            attempt(getpriority(os.PRIO_PGRP, NO_SUCH_PID + 1)),
            attempt(getpriority(os.PRIO_PROCESS, 0)),
        ],
    )
    assert result == [errno.EBADFD, errno.ESRCH, "ok"]


def test_conditions_on_the_same_argument_match_either_as_runc_does():
    cfg = allow(
        {
            "names": ["getpriority"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EBADFD,
            "args": [
                {"index": 1, "value": NO_SUCH_PID + 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": NO_SUCH_PID + 2, "op": "SCMP_CMP_EQ"},
            ],
        }
    )
    result = run_ok(
        cfg,
        lambda fd: [
            attempt(getpriority(os.PRIO_PROCESS, NO_SUCH_PID + 1)),
            attempt(getpriority(os.PRIO_PROCESS, NO_SUCH_PID + 2)),
            attempt(getpriority(os.PRIO_PROCESS, NO_SUCH_PID + 3)),
        ],
    )
    assert result == [errno.EBADFD, errno.EBADFD, errno.ESRCH]


# --- flags and a whole profile -------------------------------------------------------------------


def filter_status() -> dict:
    with open("/proc/self/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f) if k.startswith("Seccomp")}


@pytest.mark.parametrize(
    "flags",
    [
        ["SECCOMP_FILTER_FLAG_TSYNC"],
        ["SECCOMP_FILTER_FLAG_LOG"],
        ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        list(seccomp.FLAGS),
    ],
)
def test_flags(scratch, flags):
    cfg = allow({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}, flags=flags)
    status, mkdir = run_ok(cfg, lambda fd: [filter_status(), attempt(lambda: os.mkdir(f"{scratch}/d"))])
    assert status["Seccomp"] == "2" and status["Seccomp_filters"] == "1"
    assert mkdir == errno.EPERM


def test_no_new_privs_is_left_alone():
    def body(fd):
        with open("/proc/self/status") as f:
            return [line.split()[1] for line in f if line.startswith("NoNewPrivs:")][0]

    assert run_ok(allow({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}), body) == "0"


ALLOWED = """accept accept4 access arch_prctl bind brk capget chdir chmod chown clock_getres
clock_gettime clock_nanosleep close close_range connect dup dup2 dup3 epoll_create1 epoll_ctl
epoll_pwait epoll_wait eventfd2 execve exit exit_group faccessat faccessat2 fadvise64 fchdir
fchmod fchmodat fchown fcntl fdatasync flock fstat fstatfs fsync ftruncate futex getcwd
getdents64 getegid geteuid getgid getgroups getpgid getpgrp getpid getppid getpriority getrandom
getresgid getresuid getrlimit getrusage getsid getsockname getsockopt gettid gettimeofday getuid
ioctl kill listen lseek lstat madvise mkdir mkdirat mmap mprotect mremap munmap nanosleep
newfstatat open openat pipe pipe2 poll ppoll prctl pread64 prlimit64 pselect6 pwrite64 read
readlink readlinkat readv recvfrom recvmsg rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend sched_getaffinity sched_yield select
sendmsg sendto set_robust_list set_tid_address setsockopt shutdown sigaltstack socketpair stat
statfs statx sysinfo tgkill umask uname unlink unlinkat vfork wait4 waitid write writev""".split()


def test_docker_like_profile(scratch):
    cfg = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ALLOWED, "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            },
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": socket.AF_VSOCK, "op": "SCMP_CMP_NE"}],
            },
            {"names": ["some_future_syscall"], "action": "SCMP_ACT_ALLOW"},
        ],
    }

    def body(fd):
        out = {
            "mkdir": attempt(lambda: os.mkdir(f"{scratch}/d")),
            "unshare": libc_call(LIBC.unshare, CLONE_NEWUTS),
            "persona query": libc_call(LIBC.personality, 0xFFFFFFFF),
            "persona 0x8": libc_call(LIBC.personality, 0x8),
        }
        pid = os.fork()  # clone without namespace flags
        if pid == 0:
            os._exit(7)
        out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM):
            out["unix socket"] = "ok"
        out["vsock"] = attempt(lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM))
        return out

    assert run_ok(cfg, body) == {
        "mkdir": "ok",
        "unshare": errno.EPERM,
        "persona query": "ok",
        "persona 0x8": errno.EPERM,
        "fork": 7,
        "unix socket": "ok",
        "vsock": errno.EPERM,
    }


# --- SCMP_ACT_NOTIFY: the test is the seccomp agent ------------------------------------------------


def serve_one_notification(notify_fd: int, reply_errno: int) -> dict:
    poller = select.poll()
    poller.register(notify_fd, select.POLLIN)
    assert poller.poll(15000), "no seccomp notification within 15s"
    req = bytearray(80)
    fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, req, True)
    notif_id, pid, _flags, syscall_nr, _arch = struct.unpack_from("=QIIiI", req)
    resp = bytearray(struct.pack("=QqiI", notif_id, 0, -reply_errno, 0))
    fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, resp, True)
    return {"pid": pid, "nr": syscall_nr}


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["SECCOMP_FILTER_FLAG_TSYNC"],
        ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_LOG"],
    ],
)
def test_notify_sends_fd_and_state_to_the_listener(scratch, flags):
    path = f"{scratch}/agent.sock"
    cfg = allow(
        {"names": MKDIR, "action": "SCMP_ACT_NOTIFY"},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
        listenerPath=path,
        listenerMetadata="MKNOD=/dev/null;x",
        flags=flags,
    )
    flt = seccomp.compile(cfg)

    def body(fd):
        state = {
            "ociVersion": "1.3.0",
            "id": "seccomp-test",
            "status": "creating",
            "pid": os.getpid(),
            "bundle": scratch,
            "annotations": {"a": "b"},
        }
        flt.send_to_listener(fd, state)
        return {
            "fd closed": attempt(lambda: os.fstat(fd)) == errno.EBADF,
            "mkdir": attempt(lambda: os.mkdir(f"{scratch}/d")),
            "rmdir": attempt(lambda: os.rmdir(f"{scratch}/missing")),
        }

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as server:
        server.bind(path)
        server.listen(1)
        server.settimeout(15)
        with child(flt, body) as c:
            conn, _ = server.accept()
            fds = []
            try:
                with conn:
                    data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
                    while chunk := conn.recv(65536):  # the runtime closes after one message
                        data += chunk
                assert len(fds) == 1
                seen = serve_one_notification(fds[0], errno.ENOMEDIUM)
            finally:
                for fd in fds:
                    os.close(fd)
            status, result = c.finish()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    message = json.loads(data)
    assert message == {
        "ociVersion": "1.3.0",
        "fds": ["seccompFd"],
        "pid": c.pid,
        "metadata": "MKNOD=/dev/null;x",
        "state": {
            "ociVersion": "1.3.0",
            "id": "seccomp-test",
            "status": "creating",
            "pid": c.pid,
            "bundle": scratch,
            "annotations": {"a": "b"},
        },
    }
    assert seen == {"pid": c.pid, "nr": seen["nr"]} and seen["nr"] in (nr("mkdir"), nr("mkdirat"))
    assert result == {"fd closed": True, "mkdir": errno.ENOMEDIUM, "rmdir": errno.EPERM}
    assert not os.path.exists(f"{scratch}/d")
