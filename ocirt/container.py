"""Operations on an existing container (runtime.md): start, state, kill, delete, pause, resume,
update, its processes (ps), and run's wait. Making containers is ocirt/create.py, processes in them ocirt/execute.py.

An OpenContainer is one container's state directory and state, opened with its lock (flock on
the directory) or without it (state, ps, list). Every operation derives the status from the
kernel, checks the status allows the operation, and then acts. The command line
(ocirt/commands/) and the public API (ocirt/api.py, whose handle is ocirt.api.Container) are
both thin adapters over these:

    with OpenContainer.open(root, container_id) as c:
        c.kill(signals.parse_signal("KILL"), all_processes=False)
"""

import _signal as signal  # the C module: no IntEnum building (enum import)
import posix  # not os: see bin/ocirt ("posix")
import time

from .errors import OcirtError
from .paths import FILE_KINDS, S_IFIFO, S_IFMT, exists
from .record import record
from .state import (
    EXECUTING,
    STARTED_MODE,
    ContainerState,
    StateDir,
    Status,
    check_id,
    is_dir,
    proc_start_time,
    proc_stopped,
    saved_frozen,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .cgroups.layout import Layout


def _warn(message: str) -> None:
    from .log import Logger

    Logger().warning(message)


# -- operations on an existing container ------------------------------------------------------------


class InitSaid(OcirtError):
    """A failure the init reported through exec.fifo once `start` let it go (a startContainer
    hook, the program's execve), having said it on its own stderr first ("ocirt init: ...")."""


@record
class OpenContainer:
    sd: StateDir
    state: ContainerState
    warn: object = None  # where warnings go (the command's log); None: stderr, runc's format
    layout: "Layout | None" = None  # the host's, if the caller has it (run: create's); else read once

    @classmethod
    def open(cls, root: str, container_id: str, lock: bool = True, warn=None, layout=None) -> "OpenContainer":
        check_id(container_id)
        sd = StateDir(root, container_id)
        if lock:
            sd.lock()
        try:
            return cls(sd, sd.load(), warn, layout)
        except BaseException:
            sd.unlock()
            raise

    def cgroup(self):
        """The container's cgroup manager; the mount table is read at most once per
        OpenContainer (start, kill and delete each ask for the manager several times)."""
        from . import cgroups

        if self.layout is None:
            self.layout = cgroups.detect()
        return cgroups.manager_from_state(self.layout, self.state.cgroup, pid=self.state.pid)

    def joinable_cgroup(self):
        """What a new process (exec's) joins: from state.json's record alone where it is a
        plain cgroupfs one (cgroups/saved.py: no manager, no mount table), else the manager."""
        from .cgroups.saved import joinable

        return joinable(self.state.cgroup) or self.cgroup()

    def status(self) -> Status:
        return self.sd.status(self.state, self._frozen)

    def _frozen(self) -> bool:
        return saved_frozen(self.state.cgroup)  # not the manager: state.json says where

    def close(self) -> None:
        self.sd.unlock()

    def __enter__(self) -> "OpenContainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, until_executed: bool = False) -> None:
        """runtime.md steps 6-9: the init runs the startContainer hooks and execs the program;
        `start` returns once the init is executing it (as runc's, crun's and youki's start do),
        or, with poststart hooks or `until_executed` (run, which waits for the container
        anyway), once it was executed (and the hooks ran). A failure of a hook or of the init
        before its execve (with `until_executed` or poststart hooks: of the execve too) stops
        the container (it can then be deleted: steps 12 and 13) and is the error of `start`."""
        self.status().check("start")
        adopt = self.sd.fifo_started  # a start killed after its mark: see below
        try:
            fd = self._open_fifo(marked=adopt)
        except FileNotFoundError:
            raise OcirtError("cannot start an already running container") from None
        try:
            hooks = self.state.hooks.get("poststart")
            if adopt:
                # That start may have read the init's "0" or not (killed before its open, even):
                # the first byte tells, and this one waits for EXECUTING in its stead.
                posix.set_blocking(fd, True)
                head, blocking = posix.read(fd, 1), True
                if not head:  # the init's end closed since status(): executed, or gone
                    self.status().check("start")
                    raise OcirtError("cannot start an already running container")
                if head == b"0":
                    head = b""
            else:
                head, blocking = b"", self._wait_started(fd)
            try:
                failure = self._read_failure(fd, until_executed or bool(hooks), blocking, head)
            finally:
                try:
                    posix.unlink(self.sd.fifo)
                except FileNotFoundError:
                    pass
        except OSError as e:  # exec.fifo made something else (a directory: EISDIR)
            raise OcirtError(f"container {self.state.id}: read {self.sd.fifo}", e.errno) from None
        finally:
            posix.close(fd)
        if failure:
            self._stop()
            raise InitSaid(failure)
        if hooks:
            from . import hooks as hooks_mod  # with hooks only

            try:
                hooks_mod.run(
                    {"poststart": hooks}, "poststart", self.state.oci(Status.RUNNING), cwd=self.state.bundle
                )
            except OcirtError:
                self._stop()
                raise

    def _open_fifo(self, marked: bool) -> int:
        """exec.fifo opened for reading, which lets the waiting init go; marked STARTED_MODE
        first unless `marked` (from then the status is created until EXECUTING, running after,
        even if this command is killed meanwhile: while the startContainer hooks run, say).
        A fifo only, never through a symlink: anything else there (a damaged state dir) is
        refused and left as it is. It was chmod'ed (a symlink's target: /dev/null made
        01622), read (a regular file's bytes were taken for the init's failure, and the
        container killed), or waited on for ever (a symlink to /dev/null)."""
        self._check_fifo(posix.lstat(self.sd.fifo).st_mode)
        if not marked:
            posix.chmod(self.sd.fifo, STARTED_MODE)
        fd = posix.open(self.sd.fifo, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC | posix.O_NOFOLLOW)
        try:
            self._check_fifo(posix.fstat(fd).st_mode)  # (what was opened is what was looked at)
        except BaseException:
            posix.close(fd)
            raise
        return fd

    def _check_fifo(self, mode: int) -> None:
        kind = mode & S_IFMT
        if kind != S_IFIFO:
            raise OcirtError(
                f"container {self.state.id}: {self.sd.fifo} is {FILE_KINDS.get(kind, 'not a fifo')}, "
                "not a fifo: the state directory was damaged"
            )

    def _wait_started(self, fd: int) -> bool:
        """Until the init's "0" (it came on `start`'s open of the fifo); an error if it died.
        Whether `fd` was made blocking meanwhile."""
        pause = 0.0002  # the init writes within a fraction of a millisecond of our open
        while True:
            got = self._read_fifo(fd)
            if got:
                return False
            if got is None:
                # The init has its end open (it opened it before waiting for a reader: our
                # open let it go on): its byte comes next, or the end if it dies first.
                posix.set_blocking(fd, True)
                if self._read_fifo(fd):
                    return True
                raise OcirtError("cannot start a container that has stopped")
            # No writer yet: either the init is about to open its end, or it died. A byte
            # written just before it exited is still in the fifo, so read once more before
            # giving up (and if that read gets it, the init did start: the byte must not be
            # read and lost).
            if proc_start_time(self.state.pid) != self.state.pid_start:
                if self._read_fifo(fd):
                    return False
                raise OcirtError("cannot start a container that has stopped")
            if pause >= 0.05 and proc_stopped(self.state.pid):  # (~0.1 s on: never on the way)
                raise OcirtError(
                    f"container {self.state.id}: its init (pid {self.state.pid}) is stopped "
                    "(SIGSTOP?): it cannot take the start; SIGCONT it and start again"
                )
            time.sleep(pause)  # not select: its module is a dlopen on every start
            pause = min(pause * 2, 0.05)

    @staticmethod
    def _read_failure(fd: int, to_end: bool, blocking: bool = False, head: bytes = b"") -> str:
        """After the init's "0": its failure's message, or "" once it is executing the program.
        The init writes EXECUTING right before its execve, a failure's message instead (a
        startContainer hook, no process) or after it (the execve's own), and holds its end
        close-on-exec, so the end comes once the program was executed or the init is gone
        (nothing written: the start stands, as before EXECUTING was written). Unless `to_end`
        (poststart hooks: they run once the program was executed), EXECUTING ends the wait
        (the init's execve, ~1 ms of tearing down its memory, goes on meanwhile; should it fail,
        the container exits 127 with the message on its stderr, as with runc). `blocking`: `fd`
        is already; `head`: what was read of it already."""
        if not blocking:
            posix.set_blocking(fd, True)
        if head[:1] == EXECUTING and not to_end:
            return ""
        chunks: list[bytes] = [head] if head else []
        while True:
            try:
                data = posix.read(fd, 4096)
            except InterruptedError:
                continue
            if not data:
                break
            if not chunks and data[:1] == EXECUTING and not to_end:
                return ""
            chunks.append(data)
        return b"".join(chunks).lstrip(EXECUTING).decode(errors="replace").strip()

    def _stop(self) -> None:
        """Stop a container whose start failed: SIGKILL its processes (members.py: its own only)
        and wait until they are gone."""
        from . import members

        self._signal_init(signal.SIGKILL)
        try:
            members.kill_and_wait(self.cgroup(), self.state.pid, self.state.pid_start)
        except (OSError, OcirtError):
            pass
        if self.state.pid > 0:
            from .children import wait_gone  # a failed start's only

            wait_gone(self.state.pid, self.state.pid_start)

    @staticmethod
    def _read_fifo(fd: int) -> "bool | None":
        """The init's byte: True once read; False where the fifo has no writer (yet, or any
        more); None where the init has its end open but wrote nothing yet (non-blocking)."""
        try:
            return bool(posix.read(fd, 1))
        except BlockingIOError:
            return None

    def kill(self, sig: int, all_processes: bool = False) -> None:
        """Signal the init, or with all_processes every process of the cgroup. A SIGKILL must
        take effect: see _after_sigkill."""
        status = self.status()
        if status is Status.STOPPED and not all_processes:
            status.check("kill")
        if all_processes:  # the container's processes only: ocirt/members.py
            from . import members

            try:
                members.signal_all(self.cgroup(), self.state.pid, self.state.pid_start, sig)
            except OSError as e:
                raise OcirtError("kill all processes", e.errno) from None
        else:
            status.check("kill")
            if not self._signal_init(sig):
                raise OcirtError("container not running")
        if sig == signal.SIGKILL and (all_processes or status is Status.PAUSED):
            self._after_sigkill(all_processes)  # else nothing to do: no manager made

    def _after_sigkill(self, all_processes: bool) -> None:
        """A paused (frozen) container is thawed, or on cgroup v1 the processes could not die
        (runc thaws too); with all_processes, return once the cgroup is empty and the init has
        exited, so that the `delete` engines send next finds nothing left and the container
        stopped (runc waits for them as well). The kernel takes an exiting process out of its
        cgroup a moment before it becomes a zombie: an empty cgroup alone does not say the init
        is gone."""
        from .members import owns_cgroup

        try:
            cg = self.cgroup()
            if cg.frozen():
                cg.thaw()
            if all_processes and owns_cgroup(cg):  # a shared cgroup may never be empty
                if cg.wait_empty() and self.state.pid > 0:
                    from .children import wait_gone

                    wait_gone(self.state.pid, self.state.pid_start, timeout=1.0)
        except (OSError, OcirtError):
            pass

    def pids(self) -> list:
        """The host pids of the container's processes: its cgroup's; without a cgroup of its
        own (rootless), those of its pid namespace (just the init when it shares ours). The
        init is one of them while it runs, in its cgroup or not (moved out of it, the cgroup
        removed under it: `ps` said `null` of a running container)."""
        from .members import with_init

        try:
            return with_init(self.cgroup().pids(), self.state.pid, self.state.pid_start)
        except OSError as e:
            raise OcirtError("unable to get all container pids", e.errno) from None

    def _signal_init(self, sig: int) -> bool:
        """Signal the init if it is still the process create made (same pid, same start time,
        held by a pidfd so the pid cannot be reused meanwhile); False when it is gone."""
        if self.state.pid <= 0:
            return False
        pidfd = -1
        try:
            pidfd = posix.pidfd_open(self.state.pid)
            if proc_start_time(self.state.pid) != self.state.pid_start:
                return False
            signal.pidfd_send_signal(pidfd, sig)
            return True
        except ProcessLookupError:  # gone, or it exited after pidfd_open (a zombie now)
            return False
        except OSError as e:  # one line naming what failed, not the bare errno's words
            raise OcirtError(f"cannot signal the container's init {self.state.pid}", e.errno) from None
        finally:
            if pidfd >= 0:
                posix.close(pidfd)

    def delete(self, force: bool = False) -> None:
        status = self.status()
        status.check("delete", force=force, container_id=self.state.id)
        if status is Status.STOPPED:
            from .cgroups.saved import remove_if_empty

            if remove_if_empty(self.state.cgroup):  # the common case, without the manager
                self._forget()
                return
        cg = self.cgroup()
        if status is Status.PAUSED:
            try:
                cg.thaw()
            except OcirtError:
                pass
        # Every process of the container goes, not only the init: exec'd processes, and
        # strays of a container without its own pid namespace (even once the init is gone,
        # if the cgroup is ours); never a process that only shares its cgroup (members.py).
        # The cgroup can only be removed once it is empty.
        if status is not Status.STOPPED or bool(cg.created):
            from . import members

            members.kill_and_wait(cg, self.state.pid, self.state.pid_start)
        if status is not Status.STOPPED:
            self._signal_init(signal.SIGKILL)
        if status is not Status.STOPPED and self.state.pid > 0:
            from .children import wait_gone  # not for the common delete, of a stopped container

            wait_gone(self.state.pid, self.state.pid_start)
        self.destroy()

    def destroy(self) -> None:
        self.cgroup().destroy()
        self._forget()

    def _forget(self) -> None:
        """After the cgroup is gone: the state directory, then the poststop hooks."""
        hooks = self.state.hooks.get("poststop")
        self.sd.remove()  # (a symlink in its place: the link, never what it points at)
        if hooks:
            # runtime.md step 13: a failure is logged as a warning, the other hooks still run,
            # and the delete succeeds
            from . import hooks as hooks_mod

            hooks_mod.run_all(
                {"poststop": hooks}, "poststop", self.state.oci(Status.STOPPED), self.warn or _warn
            )

    # -- pause / resume / update: operations on the container's cgroup ----------------------------

    def pause(self) -> None:
        self.status().check("pause")
        self.cgroup().freeze()

    def resume(self) -> None:
        self.status().check("resume")
        self.cgroup().thaw()

    def recorded_resources(self) -> dict:
        """linux.resources as last set: what `update` recorded in state.json's cgroup, else the
        bundle's config.json (read again: create records no copy)."""
        recorded = (self.state.cgroup or {}).get("resources")
        if isinstance(recorded, dict):
            return recorded
        try:
            with open(f"{self.state.bundle}/config.json", "rb") as f:
                from . import jsonio

                resources = (jsonio.load(f).get("linux") or {}).get("resources")
        except (OSError, ValueError, AttributeError):
            return {}
        return resources if isinstance(resources, dict) else {}

    def update(self, apply: dict, record: dict, rollback: dict | None = None, on_rollback_error=None) -> None:
        """Write `apply` (a partial linux.resources) to the cgroup and record `record` as the
        container's resources. On a failure, write `rollback` back (best effort) and re-raise:
        also where the record cannot be saved (a full or read-only --root, RLIMIT_FSIZE), so
        that a failed update leaves the cgroup as state.json tells it (it was left changed)."""
        self.status().check("update")
        cg = present(self.cgroup(), self.state.id)
        previous = self.state.cgroup
        try:
            cg.apply(apply)
            saved = dict(previous)
            saved.update(cg.to_dict())
            saved["resources"] = record
            self.state.cgroup = saved
            self.sd.save(self.state)
        except (OcirtError, OSError):
            self.state.cgroup = previous
            if rollback:
                try:
                    cg.apply(rollback)
                except OcirtError as e:
                    if on_rollback_error is not None:
                        on_rollback_error(e)
            raise


def present(cg, container_id: str):
    """`cg` (a cgroup manager), the cgroup being there: one removed under the container (an
    rmdir by someone else, in every hierarchy) is named. update said "this kernel has no
    cpu.shares" of it, and events --stats printed zeros as the container's statistics."""
    dirs = cg.dirs()
    if dirs and not any(is_dir(d) for d in dirs):
        raise OcirtError(f"container {container_id}: its cgroup {cg.path() or dirs[0]} is gone")
    return cg


def start_created(
    sd: StateDir,
    state: ContainerState,
    before_start=None,
    layout=None,
    keep: bool = False,
    until_executed: bool = True,
) -> None:
    """run's start: start the container create just made (its lock still held, so nothing acts
    on it in between), after before_start() if given; on any failure delete it, or with `keep`
    (run --keep, as runc's) leave it stopped. The lock is let go. `layout`: the cgroup layout
    create read, if the caller has it. `until_executed` (a foreground run, the API's): the
    program's execve too, whose failure is then the error; else (run -d, as runc's) as
    `start`, which returns once the init is executing it, and a program the kernel then
    refuses ends the container with the init's line on its stderr."""
    with OpenContainer(sd, state, layout=layout) as c:
        try:
            if before_start is not None:
                before_start()
            c.start(until_executed=until_executed)
        except BaseException as e:
            if not (keep and isinstance(e, OcirtError)):  # (a ^C deletes it all the same)
                c.delete(force=True)
            raise


def remove_leftover(root: str, container_id: str) -> bool:
    """A state dir without a usable state.json (a create that was killed, a damaged file): what
    it still tells of is killed and removed, then the directory (members.remove_damaged). False
    when there was no state dir."""
    try:
        check_id(container_id)
    except OcirtError:
        return False
    sd = StateDir(root, container_id)
    if not is_dir(sd.path):
        return False
    _check_leftover(sd)
    from .members import remove_damaged

    remove_damaged(root, container_id)
    return True


def _check_leftover(sd: StateDir) -> None:
    """Refuse to remove a state dir whose container may still be there with nothing to find it
    by: state.json is there (ocirt writes it whole, by a rename: one it cannot read was damaged
    by something else, and the container it was written for may be running), or exec.fifo is
    (a create went past its first save of state.json, and its init may be waiting), but
    neither state.json nor what a killed create leaves aside tells a pid or a cgroup. runc too
    fails on a state.json it cannot read."""
    if not exists(sd.fifo) and not exists(sd.state_file, follow=False):
        return  # a create killed before it saved anything: nothing but the directory
    from .state import DamagedState, salvage_fields

    try:
        salvage, damage = salvage_fields(sd.read()), "no pid and no cgroup in it"
    except DamagedState as e:
        salvage, damage = e.salvage, e.damage
    except OcirtError:
        salvage, damage = sd.salvage_aside(), "missing"
    if salvage.get("pid") or salvage.get("cgroup"):
        return
    raise OcirtError(
        f"container {sd.id}: damaged state.json ({damage}): its init may still run, and nothing "
        f"tells which processes and cgroup are its own; not removed: remove {sd.path} once they "
        f"are gone"
    )


def wait_init(pid: int, relay=None) -> int:
    """Reap children until `pid` exits (we are its subreaper); its exit code, 128+N for a signal.
    With `relay` (a foreground run's or exec's signals.Relay, passing on to `pid`), the signals
    it passes on are taken while waiting (Relay.wait): none is left behind a blocking waitpid."""
    if relay is not None:
        return relay.wait(lambda: _reap(pid, posix.WNOHANG))
    code = _reap(pid, 0)
    return 255 if code is None else code  # (None only with WNOHANG)


def _reap(pid: int, options: int) -> int | None:
    """Reap children (with posix.WNOHANG: those that have exited) until `pid` is among them: its
    exit code, 128+N for a signal; None where it has not exited (WNOHANG); 255 without children."""
    while True:
        try:
            got, status = posix.waitpid(-1, options)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        if got == pid:
            return (
                posix.waitstatus_to_exitcode(status)
                if posix.WIFEXITED(status)
                else 128 + posix.WTERMSIG(status)
            )
        if got == 0:  # (WNOHANG: none has exited)
            return None


# The former name, for modules that still use it (commands/list.py):
# to be dropped once they say OpenContainer.
Container = OpenContainer
