"""Operations on an existing container (runtime.md): start, state, kill, delete, pause, resume,
update, and run's wait. Making containers and processes is ocirt/spawn.py.

Every operation takes the container's lock (flock on its state directory), derives the status from
the kernel, checks the status allows the operation, and then acts.
"""
from __future__ import annotations

import _signal as signal  # the C module: no IntEnum building (enum import)
import os
import select
import time

from . import hooks as hooks_mod
from .errors import OcirtError
from .record import record
from .state import ContainerState, StateDir, Status, proc_start_time

# runc's id rule, ^[\w+-.]+$, without importing re (~4 ms) on every command
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")

def check_id(container_id: str) -> None:
    if not container_id or container_id in (".", "..") or not _ID_CHARS.issuperset(container_id):
        raise OcirtError(f"invalid container id format: {container_id}")

def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        _wait_gone(pid, None)


def _wait_gone(pid: int, start: int | None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = proc_start_time(pid)
        if now is None or (start is not None and now != start):
            return
        time.sleep(0.002)

# -- operations on an existing container ------------------------------------------------------------

@record
class Container:
    sd: StateDir
    state: ContainerState

    @classmethod
    def open(cls, root: str, container_id: str, lock: bool = True) -> "Container":
        check_id(container_id)
        sd = StateDir(root, container_id)
        if lock:
            sd.lock()
        try:
            return cls(sd, sd.load())
        except BaseException:
            sd.unlock()
            raise

    def cgroup(self):
        from . import cgroups
        return cgroups.Cgroup.from_dict(cgroups.detect(), self.state.cgroup)

    def status(self) -> Status:
        def frozen():
            try:
                return self.cgroup().frozen()
            except OSError:
                return False
        return self.sd.status(self.state, frozen if self.state.cgroup else None)

    def close(self) -> None:
        self.sd.unlock()

    def start(self) -> None:
        self.status().check("start")
        try:
            fd = os.open(self.sd.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise OcirtError("cannot start an already running container") from None
        try:
            while not self._read_fifo(fd):
                # Nothing yet: either the init is about to write, or it died. A byte written just
                # before it exited is still in the fifo, so read once more before giving up.
                if proc_start_time(self.state.pid) != self.state.pid_start and \
                        not self._read_fifo(fd):
                    raise OcirtError("cannot start a container that has stopped")
                select.select([fd], [], [], 0.05)
        finally:
            os.close(fd)
        os.unlink(self.sd.fifo)
        hooks = self.state.hooks.get("poststart")
        if hooks:
            hooks_mod.run({"poststart": hooks}, "poststart", self.state.oci(Status.RUNNING))
    def exec(self, proc, kernel, pid_file: str | None = None, subreaper: bool = False,
             console_socket: str | None = None, console_size: dict | None = None) -> int:
        """Start `proc` inside the container; returns its pid once it is about to exec."""
        from .spawn import exec_process
        return exec_process(self, proc, kernel, pid_file, subreaper, console_socket, console_size)

    @staticmethod
    def _read_fifo(fd: int) -> bool:
        try:
            return bool(os.read(fd, 1))
        except BlockingIOError:
            return False

    def kill(self, sig: int, all_processes: bool = False) -> None:
        status = self.status()
        if status is Status.STOPPED and not all_processes:
            status.check("kill")
        if all_processes:  # the container's processes only: ocirt/members.py
            from . import members
            try:
                members.signal_all(self.cgroup() if self.state.cgroup else None,
                                   self.state.pid, self.state.pid_start, sig)
            except OSError as e:
                raise OcirtError("kill all processes", e.errno) from None
            return
        status.check("kill")
        if not self._signal_init(sig):
            raise OcirtError("container not running")

    def _signal_init(self, sig: int) -> bool:
        """Signal the init if it is still the process create made (same pid, same start time,
        held by a pidfd so the pid cannot be reused meanwhile); False when it is gone."""
        if self.state.pid <= 0:
            return False
        try:
            pidfd = os.pidfd_open(self.state.pid)
        except ProcessLookupError:
            return False
        try:
            if proc_start_time(self.state.pid) != self.state.pid_start:
                return False
            signal.pidfd_send_signal(pidfd, sig)
            return True
        except ProcessLookupError:  # it exited after pidfd_open (a zombie now)
            return False
        finally:
            os.close(pidfd)

    def delete(self, force: bool = False) -> None:
        status = self.status()
        status.check("delete", force=force, container_id=self.state.id)
        cg = self.cgroup() if self.state.cgroup else None
        if status is Status.PAUSED and cg:
            try:
                cg.thaw()
            except OcirtError:
                pass
        # Every process of the container goes, not only the init: exec'd processes, and
        # strays of a container without its own pid namespace (even once the init is gone,
        # if the cgroup is ours); never a process that only shares its cgroup (members.py).
        # The cgroup can only be removed once it is empty.
        if cg is not None and (status is not Status.STOPPED or bool(cg.created)):
            from . import members
            members.kill_and_wait(cg, self.state.pid, self.state.pid_start)
        if status is not Status.STOPPED:
            self._signal_init(signal.SIGKILL)
        if status is not Status.STOPPED and self.state.pid > 0:
            _wait_gone(self.state.pid, self.state.pid_start)
        self.destroy()

    def destroy(self) -> None:
        if self.state.cgroup:
            self.cgroup().destroy()
        hooks = self.state.hooks.get("poststop")
        self.sd.remove()
        if hooks:
            try:
                hooks_mod.run({"poststop": hooks}, "poststop", self.state.oci(Status.STOPPED))
            except OcirtError:
                pass  # runtime.md: poststop failures are logged, the delete still succeeds

    # -- pause / resume / update: operations on the container's cgroup ----------------------------

    def _own_cgroup(self):
        if not self.state.cgroup:
            raise OcirtError("the container has no cgroup")
        return self.cgroup()

    def pause(self) -> None:
        self.status().check("pause")
        self._own_cgroup().freeze()

    def resume(self) -> None:
        self.status().check("resume")
        self._own_cgroup().thaw()

    def recorded_resources(self) -> dict:
        """linux.resources as last set: what `update` recorded in state.json's cgroup, else the
        bundle's config.json (read again: create records no copy)."""
        recorded = (self.state.cgroup or {}).get("resources")
        if isinstance(recorded, dict):
            return recorded
        try:
            with open(os.path.join(self.state.bundle, "config.json"), "rb") as f:
                from . import jsonio
                resources = (jsonio.load(f).get("linux") or {}).get("resources")
        except (OSError, ValueError, AttributeError):
            return {}
        return resources if isinstance(resources, dict) else {}

    def update(self, apply: dict, record: dict, rollback: dict | None = None,
               on_rollback_error=None) -> None:
        """Write `apply` (a partial linux.resources) to the cgroup and record `record` as the
        container's resources. On a failure, write `rollback` back (best effort) and re-raise."""
        self.status().check("update")
        cg = self._own_cgroup()
        try:
            cg.apply(apply)
        except OcirtError:
            if rollback:
                try:
                    cg.apply(rollback)
                except OcirtError as e:
                    if on_rollback_error is not None:
                        on_rollback_error(e)
            raise
        saved = dict(self.state.cgroup)
        saved.update(cg.to_dict())
        saved["resources"] = record
        self.state.cgroup = saved
        self.sd.save(self.state)


def wait_init(pid: int) -> int:
    """Reap children until `pid` exits (we are its subreaper); its exit code, 128+N for a signal."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        if got == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
                128 + os.WTERMSIG(status)
