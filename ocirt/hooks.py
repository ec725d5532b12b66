"""OCI hooks (config.md "POSIX-platform Hooks"): the state on stdin, a timeout, errors by name."""
from __future__ import annotations

import os
import time

from . import jsonio
from .errors import OcirtError

HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def run(hooks: dict | None, name: str, state: dict) -> None:
    """Run every hook of kind `name`; the first failure raises, naming the hook by JSON pointer."""
    for i, hook in enumerate((hooks or {}).get(name) or []):
        run_one(hook, state, f"/hooks/{name}/{i}")


def run_one(hook: dict, state: dict, pointer: str) -> None:
    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(item.split("=", 1) for item in hook.get("env") or [] if "=" in item)
    timeout = hook.get("timeout")
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:
        os.close(r)
        os.close(w)
        raise OcirtError(f"{pointer}: fork", e.errno) from None
    if pid == 0:
        _child(r, w, path, args, env, pointer)  # never returns
    os.close(r)
    try:
        os.write(w, jsonio.dumps(state).encode())
    except BrokenPipeError:
        pass
    finally:
        os.close(w)
    status = _wait(pid, timeout)
    if status is None:
        raise OcirtError(f"{pointer}: hook {path} timed out after {timeout}s")
    if os.WIFSIGNALED(status):
        raise OcirtError(f"{pointer}: hook {path} killed by signal {os.WTERMSIG(status)}")
    code = os.WEXITSTATUS(status)
    if code:
        raise OcirtError(f"{pointer}: hook {path} exited with status {code}")


def _child(r: int, w: int, path, args, env, pointer: str) -> None:
    """The forked hook runner: exec the hook, or exit 127. Whatever it raises, it never returns
    into the runtime's code (a ValueError of a NUL byte, a KeyboardInterrupt...)."""
    try:
        os.dup2(r, 0)
        os.close(r)
        os.close(w)
        os.execve(path, args, env)
    except BaseException as e:  # noqa: BLE001 - told to the parent's stderr, then _exit
        reason = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)
        try:
            os.write(2, f"{pointer}: exec {path}: {reason}\n".encode(errors="replace"))
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(127)


def _wait(pid: int, timeout: int | None):
    if not timeout:
        return os.waitpid(pid, 0)[1]
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.005)
