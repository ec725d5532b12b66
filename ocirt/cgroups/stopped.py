"""A stopped container's cgroup removed from state.json's record alone, for `delete`: no manager,
no mount table and no os (see bin/ocirt, "posix"), ~3 ms less per delete.

Only the plain case: a cgroupfs record (not a systemd unit) in which create made every directory
of the container's cgroup, each of them empty now (no process, no child cgroup). Anything else
is the manager's (FsCgroup.destroy after members.kill_and_wait): processes still there or still
exiting, child cgroups, directories that existed before create.
"""

import errno
import posix


def removal_order(created: list) -> list:
    """The order create's directories are removed in: deepest first; within a depth, the
    reverse of the order they were made in (the manager's order too)."""
    return sorted(reversed(created), key=lambda p: p.count("/"), reverse=True)


def remove_if_empty(saved: dict | None) -> bool:
    """Remove the cgroup `saved` (a manager's to_dict()) describes if the plain case holds: True
    when it did; False when the manager must (then nothing was removed, but for a race with a
    process put into the cgroup meanwhile, which the manager then deals with)."""
    if not saved or saved.get("systemd") or saved.get("kind") not in ("v1", "hybrid", "v2"):
        return False
    dirs = list((saved.get("paths") or {}).values())
    if saved.get("unified"):
        dirs.append(saved["unified"])
    created = saved.get("created") or []
    if not dirs or not set(dirs) <= set(created) or not all(_empty(d) for d in dirs):
        return False
    leaves = set(dirs)
    for d in removal_order(created):
        try:
            posix.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            if d in leaves or e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                return False
            # a parent create made that holds other cgroups now: it stays, as with the manager
    return True


def _empty(d: str) -> bool:
    """No process in cgroup `d` and no cgroup below it (gone altogether counts as empty). A
    cgroupfs directory's link count is 2 plus its child cgroups (kernfs keeps it so)."""
    try:
        if posix.stat(d).st_nlink != 2:
            return False
        fd = posix.open(f"{d}/cgroup.procs", posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            return not posix.read(fd, 64).strip()
        finally:
            posix.close(fd)
    except FileNotFoundError:
        return True
    except OSError:
        return False
