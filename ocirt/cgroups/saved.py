"""A container's cgroup as state.json's record gives it, without the manager: no mount table,
no manager classes and no os (see bin/ocirt, "posix"). Two uses, each ~1.5-3 ms less:

- `delete` of a stopped container removes its cgroup (`remove_if_empty`), in the plain case
  only: create made every directory of it, and each can be removed (no process, no child
  cgroup: the rmdir itself is the test). Anything else is the manager's (FsCgroup.destroy after
  members.kill_and_wait): processes still there or still exiting, child cgroups, directories
  that existed before create.
- `exec` puts its process into the container's cgroup (`Joinable`: born there on cgroup v2,
  else moved into each hierarchy's directory), the way the manager's add_pid does.

The plain case is a cgroupfs record (not a systemd unit) of a cgroup v1, hybrid or v2 host;
anything else, or no record, is the manager's (cgroups.manager_from_state).
"""

import errno
import posix

from ..errors import OcirtError


def cgroup_dirs(paths: dict, unified: "str | None") -> list:
    """A cgroupfs cgroup's directories: each v1 hierarchy's (once each), then the unified one
    (FsCgroup.dirs, and the record's below)."""
    dirs: list = []
    for d in paths.values():
        if d not in dirs:
            dirs.append(d)
    if unified and unified not in dirs:
        dirs.append(unified)
    return dirs


def self_placement(dirs: list, unified: "str | None") -> "tuple[str | None, list[str]]":
    """Manager.self_placement of a cgroupfs cgroup (FsCgroup's, and exec's record's): born in
    the cgroup2 directory where there is one (v2, hybrid), then into each v1 hierarchy by
    itself through its `tasks` (none on v2)."""
    return unified, [f"{d}/tasks" for d in dirs if d != unified]


def record_dirs(saved: "dict | None") -> "list | None":
    """The directories of a plain cgroupfs record, in the manager's order; None where the
    record is not the plain case."""
    if not saved or saved.get("systemd") or saved.get("kind") not in ("v1", "hybrid", "v2"):
        return None
    return cgroup_dirs(saved.get("paths") or {}, saved.get("unified")) or None


def move(dirs: list, pid: int, write, sleep) -> None:
    """Move process `pid` into every directory of `dirs` (its cgroup.procs), with `write(path,
    text)`; a process just cloned may still be new to the kernel (EINVAL): tried again, ten
    times in all, `sleep(0.01)` apart. OcirtError naming the directory otherwise."""
    for d in dirs:
        path = f"{d}/cgroup.procs"
        for attempt in range(10):
            try:
                write(path, str(pid))
                break
            except OSError as e:
                if e.errno == errno.EINVAL and attempt < 9:
                    sleep(0.01)
                    continue
                raise OcirtError(f"cannot move process {pid} into cgroup {d}", errno=e.errno) from None


class Joinable:
    """The part of a manager that exec's process needs (self_placement, else add_pid), from
    the record alone. `joinable(saved)` gives one, or None for the manager's way."""

    def __init__(self, dirs: list, born_in: "str | None", unified: "str | None" = None):
        self.dirs = dirs
        self.born_in = born_in
        self.unified = unified  # a hybrid host's cgroup2 directory (a v2 host's is born_in)
        self.fs = None if born_in else _fs()  # a v1 or hybrid host's move: its import comes
        # now, before exec's fork, not between the child's pid and its move (after a fork
        # every page the import touches is a copy-on-write fault, ~0.3 ms there)

    def self_placement(self) -> "tuple[str | None, list[str]]":
        return self_placement(self.dirs, self.born_in or self.unified)

    def add_pid(self, pid: int) -> None:
        fs = self.fs or _fs()  # v2: only where its birth in the cgroup failed (clone3 refused)
        move(self.dirs, pid, fs.write, fs.sleep)


def _fs():
    from .fs import DEFAULT_FS

    return DEFAULT_FS


def joinable(saved: dict | None) -> "Joinable | None":
    dirs = record_dirs(saved)
    if dirs is None or saved is None:
        return None
    kind, unified = saved.get("kind"), saved.get("unified")
    return Joinable(dirs, unified if kind == "v2" else None, unified if kind == "hybrid" else None)


def removal_order(created: list) -> list:
    """The order create's directories are removed in: deepest first; within a depth, the
    reverse of the order they were made in (the manager's order too)."""
    return sorted(reversed(created), key=lambda p: p.count("/"), reverse=True)


def remove_if_empty(saved: dict | None) -> bool:
    """Remove the cgroup `saved` (a manager's to_dict()) describes if the plain case holds: True
    when it did; False when the manager must. Each directory's rmdir is its own test (the kernel
    refuses one that holds a process or a child cgroup), so no cgroup.procs is read first: on a
    cgroup v1 host that was ten reads of nothing before ten rmdirs. A directory that refuses
    leaves the rest to the manager, with what was removed before it gone: empty directories of
    other hierarchies, which the manager removes as well (a process it would kill is in the
    primary hierarchy's directory, which its pids() reads, and keeps that one busy)."""
    dirs = record_dirs(saved)
    created = (saved or {}).get("created") or []
    if not dirs or not set(dirs) <= set(created):
        return False
    leaves = set(dirs)
    for d in removal_order(created):
        try:
            # not a cgroup (a damaged record; the rmdir would take an empty directory of any
            # file system): the manager's, which removes only what is below the host's cgroup
            # mounts (cgroup.in_hierarchy)
            if not posix.access(d + "/cgroup.procs", posix.F_OK) and posix.access(d, posix.F_OK):
                return False
            posix.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            if d in leaves or e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                return False
            # a parent create made that holds other cgroups now: it stays, as with the manager
    return True
