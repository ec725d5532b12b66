"""OCI hooks (config.md "POSIX-platform Hooks"): the state on stdin, a timeout, errors by name."""

from __future__ import annotations

import _signal  # (loaded already: ocirt.signals)
import posix  # not os: see ocirt/paths.py
import select
import time

from . import jsonio
from .errors import OcirtError, errno_text
from .signals import default_internal, execve
from .state import read_to_end

HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CONTAINER_HOOKS = ("createContainer", "startContainer")  # run in the container's namespaces


# The working directory each kind of hook runs in, as runc 1.1.5 runs them: the bundle for the
# runtime-namespace hooks of create and start, the rootfs (before pivot_root) for createContainer,
# process.cwd for startContainer (the init is there already), the caller's for poststop.


def inherited(name: str, environ: dict | None = None) -> dict:
    """The environment of a hook of kind `name` that has no `env` (absent or null; an empty list
    is an empty environment), as runc 1.1.5 gives it: the runtime command's own for the hooks in
    its namespaces (a hook commonly needs PATH), `environ` (process.env, which the caller
    passes) for the container's, else none."""
    if environ is not None:
        return environ
    return {} if name in CONTAINER_HOOKS else callers_environ()


def callers_environ() -> dict:
    """The environment this command was started with, as /proc/self/environ keeps it: not
    posix.environ, to which Python's start adds LC_CTYPE=C.UTF-8 under the C locale (its locale
    coercion), a variable runc's hooks never get; posix.environ where /proc cannot tell."""
    try:
        fd = posix.open("/proc/self/environ", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return posix.environ
    try:
        data = read_to_end(fd)
    except OSError:
        return posix.environ
    finally:
        posix.close(fd)
    env: dict = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key not in env:  # (the first of a name, as getenv finds it)
            env[key] = value
    return env


def run(
    hooks: dict | None, name: str, state: dict, cwd: str | None = None, environ: dict | None = None
) -> None:
    """Run every hook of kind `name`; the first failure raises, naming the hook by JSON pointer.
    A hook's `timeout` kills it and counts as a failure. `environ`: see inherited."""
    for i, hook in enumerate((hooks or {}).get(name) or []):
        run_one(hook, state, f"/hooks/{name}/{i}", cwd, inherited(name, environ))


def run_all(hooks: dict | None, name: str, state: dict, warn, cwd: str | None = None) -> None:
    """poststop (runtime.md step 13): every hook runs; a failure is a warning, not an error."""
    for i, hook in enumerate((hooks or {}).get(name) or []):
        try:
            run_one(hook, state, f"/hooks/{name}/{i}", cwd, inherited(name))
        except OcirtError as e:
            warn(f"{name} hook failed: {e}")


# What is kept of each of a hook's stdout and stderr for its error (runc keeps it all); the rest
# is read and dropped, so that a chatty hook never blocks on a full pipe.
OUTPUT_KEPT = 64 << 10


def run_one(
    hook: dict, state: dict, pointer: str, cwd: str | None = None, environ: dict | None = None
) -> None:
    """One hook, as runc runs it: the state on stdin (as Go's json.Marshal writes it, without a
    pid once there is none), `environ` without an `env` of its own, its stdout and stderr
    captured, not the runtime's (with `create` run by an engine they are the container's log)
    and told in its error if it fails."""
    path = hook["path"]
    args = hook.get("args") or [path]
    if hook.get("env") is None:
        env = environ or {}
    else:
        env = dict(item.split("=", 1) for item in hook["env"] if "=" in item)
    timeout = hook.get("timeout")
    if not state.get("pid"):
        state = {k: v for k, v in state.items() if k != "pid"}
    data = jsonio.go_dumps(state).encode()
    fds: list = []
    try:
        for _ in range(3):  # stdin, stdout, stderr
            fds.extend(posix.pipe2(posix.O_CLOEXEC))
        fds.extend(posix.pipe2(posix.O_CLOEXEC))  # the child's exec error, if any
        pid = posix.fork()
    except OSError as e:
        for fd in fds:
            posix.close(fd)
        raise OcirtError(f"{pointer}: fork", e.errno) from None
    in_r, in_w, out_r, out_w, err_r, err_w, failed_r, failed_w = fds
    if pid == 0:
        _child((in_r, out_w, err_w), failed_w, path, args, env, cwd)  # never returns
    try:
        posix.setpgid(pid, pid)  # (as _child does: whichever comes first)
    except OSError:  # (it has executed the hook already)
        pass
    for fd in (in_r, out_w, err_w, failed_w):
        posix.close(fd)
    try:
        try:
            # "" once the hook is executed (the pipe is close-on-exec)
            failed = read_to_end(failed_r).decode(errors="replace")
        finally:
            posix.close(failed_r)
        status, out, err = _communicate(pid, timeout, data, in_w, out_r, err_r)
    except BaseException:  # (a ^C, an error of ours): the hook does not outlive its run
        _kill_group(pid)
        try:
            _waitpid(pid)
        except ChildProcessError:
            pass
        raise
    if failed:
        raise OcirtError(f"{pointer}: exec {path}: {failed}")
    if status is None:
        raise OcirtError(f"{pointer}: error running hook {path}: timed out after {timeout}s")
    if posix.WIFSIGNALED(status):
        # Go's words for it, as runc's error has them ("signal: killed")
        why = f"signal: {_signal.strsignal(posix.WTERMSIG(status)).lower()}"
        if posix.WCOREDUMP(status):
            why += " (core dumped)"
    elif posix.WEXITSTATUS(status):
        why = f"exit status {posix.WEXITSTATUS(status)}"
    else:
        return
    said = f"stdout: {out.decode(errors='replace')}, stderr: {err.decode(errors='replace')}"
    raise OcirtError(f"{pointer}: error running hook {path}: {why}, {said}")


def _child(stdio: tuple, failed: int, path, args, env, cwd: str | None = None) -> None:
    """The forked hook runner: exec the hook, or say why not on `failed` and exit 127. Whatever
    it raises, it never returns into the runtime's code (a ValueError of a NUL byte, a
    KeyboardInterrupt...)."""
    try:
        for target, fd in enumerate(stdio):
            posix.dup2(fd, target)  # (dup2 clears close-on-exec on the copy)
        if cwd:
            posix.chdir(cwd)
        default_internal()  # (a runtime started by posix_spawn: glibc's two, not the hook's)
        posix.setpgid(0, 0)  # a process group of its own: what it starts there goes with it
        execve(path, args, env)
    except BaseException as e:  # noqa: BLE001 - told to the parent, then _exit
        reason = errno_text(e)
        try:
            posix.write(failed, (reason or "failed").encode(errors="replace")[:1000])
        except BaseException:  # noqa: BLE001
            pass
    finally:
        posix._exit(127)


def _communicate(pid: int, timeout: int | None, data: bytes, in_w: int, out_r: int, err_r: int):
    """Give the hook `data` on its stdin and read its stdout and stderr, all at once (either
    side may fill a pipe first), until it exits or outlives `timeout` seconds (it is killed
    then). Its wait status (None when it timed out), its stdout and its stderr. Once it has
    exited, what its pipes hold is read and no more: a child it left running with them (a
    daemon it started) does not hold up the runtime (runc's hook waits for that child too).
    poll, not select: the fds may be past FD_SETSIZE."""
    kept = {out_r: bytearray(), err_r: bytearray()}
    open_fds = {in_w, out_r, err_r}
    poller = select.poll()
    try:
        pidfd = posix.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
    except OSError:  # no pidfds (Linux < 5.3): until both pipes close, without the timeout
        pidfd = None
    deadline = time.monotonic() + timeout if timeout else None
    try:
        for fd in open_fds:
            posix.set_blocking(fd, False)
            poller.register(fd, select.POLLOUT if fd == in_w else select.POLLIN)
        exited = False
        while not exited and (pidfd is not None or open_fds - {in_w}):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            # (poll takes a C int of milliseconds: a wait of a day at the most, then the
            # deadline is looked at again)
            for fd, _ in poller.poll(None if left is None else max(1, int(min(left, 86400.0) * 1000))):
                if fd == pidfd:
                    exited = True
                elif fd == in_w:
                    try:
                        data = data[posix.write(in_w, data) :]
                    except BlockingIOError:
                        continue
                    except OSError:  # (EPIPE: the hook does not read its stdin)
                        data = b""
                    if not data:
                        _close(poller, open_fds, in_w)
                elif _read_some(fd, kept[fd]) is False:
                    _close(poller, open_fds, fd)
        if exited:  # what its pipes hold now (a bounded number of reads: a daemon may go on)
            for fd in open_fds - {in_w}:
                for _ in range(64):
                    if not _read_some(fd, kept[fd]):
                        break
        status: int | None
        done, status = posix.waitpid(pid, posix.WNOHANG)
        if not done:
            if deadline is not None and time.monotonic() >= deadline:
                _kill_group(pid)  # with what it started and waits for (runc waits for those)
                _waitpid(pid)
                status = None
            else:  # (no pidfd: its pipes are closed)
                status = _waitpid(pid)
    finally:
        if pidfd is not None:
            posix.close(pidfd)
        for fd in open_fds:
            posix.close(fd)
    return status, bytes(kept[out_r]), bytes(kept[err_r])


def _kill_group(pid: int) -> None:
    """SIGKILL to the hook's process group (its own, _child's) and to the hook."""
    for target in (-pid, pid):
        try:
            posix.kill(target, 9)
        except ProcessLookupError:
            pass


def _close(poller, open_fds: set, fd: int) -> None:
    poller.unregister(fd)
    open_fds.discard(fd)
    posix.close(fd)


def _read_some(fd: int, kept: bytearray) -> bool | None:
    """Read what `fd` holds into `kept` (up to OUTPUT_KEPT): True if it gave something, False
    at its end, None when it holds nothing now."""
    try:
        chunk = posix.read(fd, 65536)
    except BlockingIOError:
        return None
    if chunk and len(kept) < OUTPUT_KEPT:
        kept += chunk[: OUTPUT_KEPT - len(kept)]
    return bool(chunk)


def _waitpid(pid: int) -> int:
    while True:
        try:
            return posix.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
