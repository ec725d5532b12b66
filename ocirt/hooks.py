"""OCI hooks (config.md "POSIX-platform Hooks"): the state on stdin, a timeout, errors by name."""

from __future__ import annotations

import posix  # not os: see ocirt/paths.py
import select
import time

from . import jsonio
from .errors import OcirtError, errno_text
from .signals import execve
from .state import read_to_end

HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


# The working directory each kind of hook runs in, as runc 1.1.5 runs them: the bundle for the
# runtime-namespace hooks of create and start, the rootfs (before pivot_root) for createContainer,
# process.cwd for startContainer (the init is there already), the caller's for poststop.


def run(hooks: dict | None, name: str, state: dict, cwd: str | None = None) -> None:
    """Run every hook of kind `name`; the first failure raises, naming the hook by JSON pointer.
    A hook's `timeout` kills it and counts as a failure."""
    for i, hook in enumerate((hooks or {}).get(name) or []):
        run_one(hook, state, f"/hooks/{name}/{i}", cwd)


def run_all(hooks: dict | None, name: str, state: dict, warn, cwd: str | None = None) -> None:
    """poststop (runtime.md step 13): every hook runs; a failure is a warning, not an error."""
    for i, hook in enumerate((hooks or {}).get(name) or []):
        try:
            run_one(hook, state, f"/hooks/{name}/{i}", cwd)
        except OcirtError as e:
            warn(f"{name} hook failed: {e}")


def run_one(hook: dict, state: dict, pointer: str, cwd: str | None = None) -> None:
    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(item.split("=", 1) for item in hook.get("env") or [] if "=" in item)
    timeout = hook.get("timeout")
    r, w = posix.pipe()
    failed_r, failed_w = posix.pipe2(posix.O_CLOEXEC)  # the child's exec error, if any
    try:
        pid = posix.fork()
    except OSError as e:
        for fd in (r, w, failed_r, failed_w):
            posix.close(fd)
        raise OcirtError(f"{pointer}: fork", e.errno) from None
    if pid == 0:
        posix.close(failed_r)
        _child(r, w, failed_w, path, args, env, cwd)  # never returns
    posix.close(r)
    posix.close(failed_w)
    try:
        posix.write(w, jsonio.dumps(state).encode())
    except BrokenPipeError:
        pass
    finally:
        posix.close(w)
    try:
        # "" once the hook is executed (the pipe is close-on-exec)
        failed = read_to_end(failed_r).decode(errors="replace")
    finally:
        posix.close(failed_r)
    status = _wait(pid, timeout)
    if failed:
        raise OcirtError(f"{pointer}: exec {path}: {failed}")
    if status is None:
        raise OcirtError(f"{pointer}: hook {path} timed out after {timeout}s")
    if posix.WIFSIGNALED(status):
        raise OcirtError(f"{pointer}: hook {path} killed by signal {posix.WTERMSIG(status)}")
    code = posix.WEXITSTATUS(status)
    if code:
        raise OcirtError(f"{pointer}: hook {path} exited with status {code}")


def _child(r: int, w: int, failed: int, path, args, env, cwd: str | None = None) -> None:
    """The forked hook runner: exec the hook, or say why not on `failed` and exit 127. Whatever
    it raises, it never returns into the runtime's code (a ValueError of a NUL byte, a
    KeyboardInterrupt...)."""
    try:
        posix.dup2(r, 0)
        posix.close(r)
        posix.close(w)
        if cwd:
            posix.chdir(cwd)
        execve(path, args, env)
    except BaseException as e:  # noqa: BLE001 - told to the parent, then _exit
        reason = errno_text(e)
        try:
            posix.write(failed, (reason or "failed").encode(errors="replace")[:1000])
        except BaseException:  # noqa: BLE001
            pass
    finally:
        posix._exit(127)


def _wait(pid: int, timeout: int | None):
    """The hook's wait status; None when it outlived `timeout` seconds (it is killed then). The
    wait is on a pidfd: no polling."""
    if not timeout:
        return _waitpid(pid)
    try:
        pidfd = posix.pidfd_open(pid)
    except OSError:  # no pidfds (Linux < 5.3): a plain wait, without the timeout
        return _waitpid(pid)
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or select.select([pidfd], [], [], left)[0]:
                break
    finally:
        posix.close(pidfd)
    done, status = posix.waitpid(pid, posix.WNOHANG)
    if done:
        return status
    posix.kill(pid, 9)
    _waitpid(pid)
    return None


def _waitpid(pid: int) -> int:
    while True:
        try:
            return posix.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
