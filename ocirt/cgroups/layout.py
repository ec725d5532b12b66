"""Where the cgroup filesystems are: parsed once from /proc/self/mountinfo.

Three host layouts exist:

    v1      only cgroup v1 hierarchies (one per controller or co-mounted group, plus named
            ones such as name=systemd)
    hybrid  v1 hierarchies for the controllers plus a cgroup2 mount (usually
            /sys/fs/cgroup/unified) that carries no controllers but tracks processes
    v2      one cgroup2 hierarchy (usually /sys/fs/cgroup) with every controller

Nothing here assumes a path: mount points come from mountinfo, the process's own cgroups
from /proc/self/cgroup. Both are read with one open/read each; no subprocess.
"""

from __future__ import annotations

from .. import paths
from ..errors import OcirtError

MOUNTINFO = "/proc/self/mountinfo"
PROC_SELF_CGROUP = "/proc/self/cgroup"

# v1 super options that are mount flags, not controllers.
_V1_NON_CONTROLLER_OPTS = frozenset(
    {
        "rw",
        "ro",
        "noprefix",
        "clone_children",
        "xattr",
        "cpuset_v2_mode",
        "favordynmods",
        "nsdelegate",
        "memory_localevents",
        "memory_recursiveprot",
        "memory_hugetlb_accounting",
        "pids_localevents",
    }
)


class Layout:
    """The host's cgroup layout.

    kind     'v1' | 'hybrid' | 'v2'
    mounts   v1 controller (or 'name=<hierarchy>') -> mount point; empty on v2.
             Co-mounted controllers ("cpu,cpuacct") map to the same mount point.
    unified  mount point of the cgroup2 hierarchy (v2 and hybrid), else None
    roots    mount point -> the cgroup path mounted there (field 4 of mountinfo, "/" unless
             the host bind-mounted a sub-tree, as some container engines do)
    """

    __slots__ = ("kind", "mounts", "unified", "roots")

    def __init__(
        self, kind: str, mounts: dict | None = None, unified: str | None = None, roots: dict | None = None
    ):
        self.kind = kind
        self.mounts = dict(mounts or {})
        self.unified = unified
        self.roots = dict(roots or {})

    def __eq__(self, other):
        return isinstance(other, Layout) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return (
            f"Layout(kind={self.kind!r}, mounts={self.mounts!r}, unified={self.unified!r}, "
            f"roots={self.roots!r})"
        )

    def cgroup2(self) -> str:
        """The mount point of the cgroup2 hierarchy; OcirtError on a host without one."""
        if self.unified is None:
            raise OcirtError("cgroup v2 is not mounted on this host")
        return self.unified

    def hierarchies(self) -> dict:
        """v1 mount point -> sorted tuple of the controllers (and name=) mounted there."""
        out: dict = {}
        for ctrl, mnt in self.mounts.items():
            out.setdefault(mnt, []).append(ctrl)
        return {m: tuple(sorted(c)) for m, c in out.items()}

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "mounts": dict(self.mounts),
            "unified": self.unified,
            "roots": dict(self.roots),
        }


def _unescape(s: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo (octal)."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and len(s[i + 1 : i + 4]) == 3 and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> Layout:
    """Build a Layout from the text of a mountinfo file."""
    mounts: dict = {}
    roots: dict = {}
    v2_mounts: list = []
    for line in text.splitlines():
        # id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        rparts = right.split(" ")
        if len(rparts) < 3:
            continue
        fstype, superopts = rparts[0], rparts[2]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        lparts = left.split(" ")
        if len(lparts) < 5:
            continue
        root, mountpoint = _unescape(lparts[3]), _unescape(lparts[4])
        if fstype == "cgroup2":
            v2_mounts.append(mountpoint)
            roots.setdefault(mountpoint, root)
            continue
        ctrls = [
            o
            for o in superopts.split(",")
            if o and o not in _V1_NON_CONTROLLER_OPTS and not o.startswith("release_agent=")
        ]
        for c in ctrls:
            # The first mount of a hierarchy wins (later ones are bind mounts of it).
            if c not in mounts:
                mounts[c] = mountpoint
                roots.setdefault(mountpoint, root)
    real_v1 = [c for c in mounts if not c.startswith("name=")]
    unified = None
    if v2_mounts:
        for preferred in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            if preferred in v2_mounts:
                unified = preferred
                break
        else:
            unified = v2_mounts[0]
    if real_v1:
        kind = "hybrid" if unified else "v1"
    elif unified:
        kind = "v2"
        # Named v1 hierarchies (a legacy name=systemd for old containers) are ignored on v2.
        mounts = {}
        roots = {unified: roots[unified]}
    else:
        raise OcirtError(
            "no cgroup filesystem is mounted (nothing of type cgroup or cgroup2 in /proc/self/mountinfo)"
        )
    if kind != "v2":
        roots = {m: r for m, r in roots.items() if m in mounts.values() or m == unified}
    return Layout(kind=kind, mounts=mounts, unified=unified, roots=roots)


def detect(mountinfo_path: str = MOUNTINFO) -> Layout:
    """Read the mount table once and describe the cgroup layout."""
    try:
        with open(mountinfo_path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise OcirtError(f"cannot read {mountinfo_path}", errno=e.errno) from None
    return parse_mountinfo(text)


def parse_proc_cgroup(text: str) -> dict:
    """/proc/PID/cgroup -> {controller or 'name=x': path, '': unified path}."""
    out: dict = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            out[""] = path
            continue
        for c in ctrls.split(","):
            out[c] = path
    return out


def own_cgroups(path: str = PROC_SELF_CGROUP) -> dict:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse_proc_cgroup(f.read())
    except OSError as e:
        raise OcirtError(f"cannot read {path}", errno=e.errno) from None


def clean_path(p: str) -> str:
    """Lexically clean a cgroups path so that '..' can never climb above its base.

    Absolute stays absolute; a relative path is cleaned as if it were absolute and then made
    relative again (what runc's CleanPath does).
    """
    if p == "":
        return ""
    absolute = p.startswith("/")
    cleaned = paths.normpath("/" + p)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned if absolute else cleaned.lstrip("/")


def strip_root(cg_path: str, mount_root: str) -> str:
    """Path of a cgroup relative to a mount whose root is `mount_root`."""
    if mount_root in ("", "/"):
        return cg_path
    if cg_path == mount_root:
        return "/"
    if cg_path.startswith(mount_root + "/"):
        return cg_path[len(mount_root) :]
    return cg_path
