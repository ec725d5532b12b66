"""Which processes are the container's, signalling only them, and removing a container whose
state.json is damaged.

A process is the container's when it is in a cgroup ocirt made for the container (every directory
of the container's cgroup was made by create, or it is the container's systemd unit), or, when
the cgroup is shared (linux.cgroupsPath named a cgroup that existed, or a rootless container stays
in the caller's cgroup), when it is in the container's pid namespace, as the init verified by pid
and start time has it, and that namespace is not the runtime's own. A container in a shared
cgroup and the host's pid namespace has one process of its own: the init. So `kill --all` and
`delete --force` never signal a process that only shares the container's cgroup (runc 1.1.5
leaves such a process alive as well).
"""

from __future__ import annotations

import _signal as signal
import os
import time

from .errors import OcirtError
from .state import DamagedState, StateDir, proc_start_time, salvage_fields


def owns_cgroup(cg) -> bool:
    """True when the whole cgroup is the container's: made by create, or its systemd unit."""
    if getattr(cg, "unit", None):
        return True
    dirs = cg.dirs()
    made = set(cg.created)
    return bool(dirs) and all(d in made for d in dirs)


def _pid_ns(pid) -> tuple | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def container_pids(cg, pid: int, pid_start: int) -> list[int]:
    """The container's processes (see the module's docstring); `cg` may be None."""
    if cg is not None and owns_cgroup(cg):
        return with_init(cg.pids(), pid, pid_start)
    if pid <= 0 or proc_start_time(pid) != pid_start:
        return []
    ns = _pid_ns(pid)
    if cg is None or ns is None or ns == _pid_ns("self"):
        return [pid]
    members = [p for p in cg.pids() if _pid_ns(p) == ns]
    return members if pid in members else [pid, *members]


def with_init(listed: list[int], pid: int, pid_start: int) -> list[int]:
    """The pids of the container's own cgroup, and its init where they lack it while it runs
    (verified by pid and start time): moved out of the cgroup, or the cgroup removed under it.
    It was left out, and `kill --all` signalled nothing (exit 0, the container running on)."""
    if pid > 0 and pid not in listed and proc_start_time(pid) == pid_start:
        return sorted([*listed, pid])
    return listed


def signal_all(cg, pid: int, pid_start: int, sig: int) -> list[int]:
    """Send `sig` to each of the container's processes. A cgroup of its own is signalled as a
    whole (cgroup.kill, or frozen while signalled), and its init too where it is not in it
    (with_init); otherwise each pid. Returns the pids signalled one by one."""
    if cg is not None and owns_cgroup(cg):
        listed = cg.pids()
        if listed:
            cg.kill_all(sig)
        strays = [p for p in with_init(listed, pid, pid_start) if p not in listed]
    else:
        strays = container_pids(cg, pid, pid_start)
    done = []
    for p in strays:
        try:
            os.kill(p, sig)
            done.append(p)
        except ProcessLookupError:
            pass
        except OSError as e:
            raise OcirtError(f"cannot send signal {sig} to {p}", errno=e.errno) from None
    return done


def kill_and_wait(cg, pid: int, pid_start: int, timeout: float = 5.0) -> None:
    """SIGKILL every process of the container and wait until they are gone (best effort)."""
    pids = container_pids(cg, pid, pid_start)
    if not pids and cg is not None and owns_cgroup(cg):
        # Its own cgroup, found empty (a stopped container: `run`'s delete, say): nothing to
        # signal or wait for, and nothing can join it meanwhile (an exec would need the lock the
        # caller holds). Not listed twice more to find the same.
        return
    starts = {p: proc_start_time(p) for p in pids}
    try:
        signal_all(cg, pid, pid_start, signal.SIGKILL)
    except (OSError, OcirtError):
        pass
    if cg is not None and owns_cgroup(cg):
        try:
            cg.wait_empty(timeout)
        except OSError:
            pass
        starts = {pid: starts[pid]} if pid in starts else {}  # (an init outside it: waited for)
    deadline = time.monotonic() + timeout
    while starts and time.monotonic() < deadline:
        starts = {p: s for p, s in starts.items() if s is not None and proc_start_time(p) == s}
        if starts:
            time.sleep(0.005)


def remove_damaged(root: str, container_id: str) -> None:
    """`delete --force` of a container whose state.json is missing or damaged: kill what it
    still tells of (the init when its pid and start time match, the cgroup ocirt made), remove
    that cgroup (best effort), and the state directory. Missing altogether is fine."""
    from .state import check_id

    try:
        check_id(container_id)  # nothing of ocirt's is under a name that is not an id
    except OcirtError:
        return
    sd = StateDir(root, container_id)
    try:
        sd.lock()  # waits for a create of this id still at work
    except OcirtError:
        return
    try:
        try:
            salvage = salvage_fields(sd.read())
        except DamagedState as e:
            salvage = e.salvage
        except OcirtError:  # no state.json: a create killed before it saved one, or just as its
            salvage = sd.salvage_aside()  # last save had the old one aside (StateDir.save)
        cg = _cgroup(salvage.get("cgroup"))
        kill_and_wait(cg, salvage.get("pid", 0), salvage.get("pid_start", 0))
        if cg is not None:
            try:
                cg.destroy()
            except (OSError, OcirtError):
                pass
        try:
            sd.remove()  # (through a link: ocirt's files only, then the link)
        except OSError as e:
            raise OcirtError(f"cannot remove the state directory {sd.path}", e.errno) from None
    finally:
        sd.unlock()


def _cgroup(saved):
    """The cgroup a (salvaged) record names, or None when there is none or it cannot be used."""
    if not saved:
        return None
    try:
        from . import cgroups

        layout = cgroups.detect()
        cg = cgroups.manager_from_state(layout, saved)
    except (OSError, OcirtError, TypeError, ValueError, KeyError, AttributeError):
        return None
    # (a directory that cannot be the container's, a hierarchy's root or one outside every
    # mount, is not in the manager: cgroup.in_hierarchy; a record left with none is "none")
    return None if cg.kind == "none" else cg
