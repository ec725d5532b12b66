"""Signal names as runc takes them: "KILL", "SIGKILL", "kill", or a number ("9"); and the
dispositions a program the runtime executes starts with.

Read from the C module _signal: the signal module builds an IntEnum (enum import) on import, and
kill is on the hot path.
"""

import _signal
import posix

from .errors import OcirtError, go_quote
from .gonum import decimal


def parse_signal(text: str) -> int:
    """The signal number `text` names; OcirtError for anything that is not a signal."""
    digits = text[1:] if text[:1] == "+" else text  # runc's strconv.Atoi takes a "+" too
    if digits.isascii() and digits.isdigit():
        num = decimal(digits)
        if 0 <= num < _signal.NSIG:  # 0: only whether the process is there, as kill(2)
            return num
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(_signal, name, None) if name.isupper() and not name.startswith("SIG_") else None
        if sig is not None:
            return int(sig)
    raise OcirtError(f"unknown signal {go_quote(text)}")  # (runc's words)


def signal_number(sig) -> int:
    """A number as it is; a name (or a number as text) through parse_signal."""
    if isinstance(sig, int):
        return int(sig)
    return parse_signal(str(sig))


# CPython ignores these from its start (its SIGPIPE becomes an EPIPE error, its SIGXFSZ an EFBIG)
PYTHON_IGNORES = (_signal.SIGPIPE, _signal.SIGXFSZ)


def execve(path, args, env) -> None:
    """posix.execve, the program starting with PYTHON_IGNORES at their default actions, as one
    executed by runc or crun does (an ignored signal stays ignored across execve: `yes | head
    -1` would not end `yes`); ignored again where the execve fails (its report must not die of
    a SIGPIPE). One caught (catch_python_ignores) needs nothing: execve resets a caught one."""
    ignored = [sig for sig in PYTHON_IGNORES if _signal.getsignal(sig) == _signal.SIG_IGN]
    for sig in ignored:
        _signal.signal(sig, _signal.SIG_DFL)
    try:
        posix.execve(path, args, env)
    finally:  # (reached only where it failed)
        for sig in ignored:
            _signal.signal(sig, _signal.SIG_IGN)


def catch_python_ignores() -> None:
    """PYTHON_IGNORES caught by a handler that does nothing instead of ignored: to this process
    the same (a write to a closed pipe still fails with EPIPE, and nothing dies), but execve
    resets a caught signal to its default where it keeps an ignored one (execve, above)."""
    for sig in PYTHON_IGNORES:
        _signal.signal(sig, _nothing)


# SIGCANCEL and SIGSETXID: glibc's own (its sigaction refuses them; Python's signal module does
# not list them). glibc's posix_spawn sets them ignored in its child before the exec, so a
# runtime started by posix_spawn (Python 3.13's subprocess, say) has them ignored, and so would
# every program it executes; no signal ignored is what the container's process starts with
# (runc 1.1.5's Go runtime resets 33 and leaves 32 as it came).
GLIBC_INTERNAL = (32, 33)


def internal_ignored() -> bool:
    """Whether this process ignores one of GLIBC_INTERNAL (/proc/self/status's SigIgn); False
    where that cannot be read."""
    from .state import read_text  # (loaded by every command already)

    try:
        text = read_text("/proc/self/status")
        at = text.index("\nSigIgn:") + 9
        mask = int(text[at : text.index("\n", at)], 16)
    except (OSError, ValueError):
        return False
    return any(mask >> (sig - 1) & 1 for sig in GLIBC_INTERNAL)


def default_internal() -> None:
    """GLIBC_INTERNAL at their default actions where they came ignored, so that what this
    process forks and executes (the init, exec's process, a hook) starts without them ignored;
    best effort (a kernel or an architecture that refuses leaves them)."""
    if internal_ignored():
        try:
            from .kernel.linux import LinuxKernel

            LinuxKernel().default_if_ignored(GLIBC_INTERNAL)
        except (OSError, ImportError):
            pass


# what ends a command or a created container: a ^C, `kill`'s default, an engine's stop
STOP_SIGNALS = (_signal.SIGHUP, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGQUIT taken as Python takes a ^C (stop_like_interrupt): raised at the
    next Python line; the command exits 128+signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Handler:
    """A Python signal handler of this process (take()). A child forked while it is in place (a
    stage, the init, a library's helper: pyroute2's for a network namespace) gets the default
    action instead, as it would have without it: such a child, told to end, ends."""

    def __init__(self) -> None:
        self.me = posix.getpid()

    def __call__(self, sig: int, frame) -> None:
        if posix.getpid() != self.me:
            _signal.signal(sig, _signal.SIG_DFL)
            posix.kill(posix.getpid(), sig)
        else:
            self.take(sig)

    def take(self, sig: int) -> None:
        raise NotImplementedError


class _StopLikeInterrupt(Handler):
    def take(self, sig: int) -> None:
        for other in STOP_SIGNALS:  # the first one stops it: the next (an engine's second) must
            if _signal.getsignal(other) is self:  # not break off the undoing (caught: a hook's
                _signal.signal(other, _nothing)  # execve resets it)
        raise Stopped(sig)


def stop_like_interrupt() -> None:
    """create's and run -d's: a SIGTERM, SIGHUP or SIGQUIT whose action is the default (not one
    the caller ignored, nohup's SIGHUP) ends the command as a ^C does, raised where it is, so
    that what it made is undone (the state dir, the cgroup, the init); the default action
    killed it there and left all that behind. (runc's create catches them and goes on.)"""
    handler = _StopLikeInterrupt()
    for sig in STOP_SIGNALS:  # (SIGINT's is Python's own, at its default)
        if _signal.getsignal(sig) == _signal.SIG_DFL:
            _signal.signal(sig, handler)


def no_inherited_signal_state() -> None:
    """The container's process starts with no signal ignored or blocked, whatever the caller left
    to this command (a shell's background job ignores SIGINT and SIGQUIT, nohup SIGHUP, conmon or
    a supervisor SIGPIPE): runc's Go runtime catches every signal, so its init, and the program
    after it, start with the default actions. An ignored signal stays ignored across fork and
    execve, a caught one does not: a handler that does nothing keeps this command as it was
    (the signal still does nothing to it) and the container's process gets the default. Python's
    own two (SIGPIPE, SIGXFSZ) stay: the init's execve resets them (execve, above)."""
    ignore = _signal.SIG_IGN
    for sig in range(1, _signal.NSIG):
        if sig not in (_signal.SIGPIPE, _signal.SIGXFSZ) and _signal.getsignal(sig) == ignore:
            _signal.signal(sig, _nothing)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
    default_internal()


def _nothing(sig, frame) -> None:
    pass


# never passed on: those no handler gets, the child's end (SIGCHLD), a terminal's resize (the
# console's own handler, where there is a terminal) and SIGURG (runc's: Go's own)
UNRELAYED = (_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD, _signal.SIGWINCH, _signal.SIGURG)


class Relay(Handler):
    """The handler of every signal a foreground `run` or `exec` passes on (all it can catch
    but UNRELAYED and `also_kept`): to the container's process once it runs, kept until then, as runc's
    signal handler, made before the process is started, queues them. Installed before the
    process is made: a signal that comes meanwhile (a SIGTERM, a ^C) neither kills the runtime
    half way, leaving the process without its waiter (or a 'creating' container), nor is lost.
    A child forked meanwhile gets the default action (Handler). With `only`, those signals alone are held (exec -d's: the ones that
    stop a command, which then cancels itself: pending says which came)."""

    def __init__(self, also_kept: tuple = (), only: tuple | None = None) -> None:
        super().__init__()
        self.pid = 0
        self.pending: list[int] = []
        self.caught: list[int] = []
        for sig in only or range(1, _signal.NSIG):
            if sig not in UNRELAYED and sig not in also_kept:
                try:
                    _signal.signal(sig, self)
                except (OSError, ValueError):  # 32 and 33: the C library's own
                    continue
                self.caught.append(sig)

    def take(self, sig: int) -> None:
        if self.pid:
            forward(self.pid, sig)
        else:
            self.pending.append(sig)

    def to(self, pid: int) -> None:
        """The process runs: what came before goes to it now, what comes later as it comes."""
        self.pid = pid
        while self.pending:
            forward(pid, self.pending.pop(0))

    def wait(self, reap) -> int:
        """reap() (a waitpid WNOHANG: None while the process runs) until it returns, the signals
        passed on meanwhile taken with sigwaitinfo, not by the handler: a Python handler runs
        only between bytecodes, and a signal that came after the last check but before a
        blocking waitpid's system call would wait in the interpreter (its C handler had it)
        until the waitpid returned, at the process's exit, which may wait for that very signal.
        Blocked, a signal waits in the kernel, and sigwaitinfo returns it; SIGCHLD, blocked
        too, wakes it for reap()."""
        wanted = (*self.caught, _signal.SIGCHLD)
        old = _signal.pthread_sigmask(_signal.SIG_BLOCK, wanted)
        try:  # (one that came before the block: its handler has passed it on)
            while (code := reap()) is None:
                sig = _signal.sigwaitinfo(wanted).si_signo
                if sig != _signal.SIGCHLD:
                    forward(self.pid, sig)
            return code
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, old)


def forward(pid: int, sig: int) -> None:
    try:
        posix.kill(pid, sig)
    except ProcessLookupError:
        pass
