"""The container's root filesystem: mounts, devices, pivot_root, masked and read-only paths.

Runs in the init, inside the new mount namespace, through a `Kernel`. Every mount destination is
opened with openat2(RESOLVE_IN_ROOT) under the rootfs, and the mount is made on that fd's
/proc/self/fd link: a symlink in the rootfs can never send a mount outside it. An idmapped bind
arrives as a detached tree made by the parent (ocirt/idmap.py) and is moved onto that fd; so does,
in a new user namespace, a bind whose source that namespace cannot reach (`open_bind_sources`).

Hardening, as runc does it:
- proc and sysfs go only on an ordinary directory of the rootfs, never through a symlink there.
- A read-only tmpfs (or /dev) is mounted writable and made read-only once everything under it is
  made (`seal_readonly`, before pivot_root): mount points and devices can be created in it.
- With --no-pivot, no fully visible procfs or sysfs of the host is left in the container's mount
  namespace (`hide_host_kernel_filesystems`): the kernel would let a nested user namespace mount
  a new, unmasked procfs because one is visible already.
"""

from __future__ import annotations

import _stat as stat  # the C half of stat.py: one module less on the way
import errno
import posix  # not os: see ocirt/paths.py

from . import kernel as k
from . import lsm, namespaces, paths
from .errors import ConfigError, OcirtError, describe_oserror, json_pointer
from .record import field, record
from .rootfs_spec import IDMAP_OPTIONS, RootfsSpec, needs_idmap  # the parent's half

# option -> (set flags, clear flags); mount(8) names, config.md "Linux mount options"
FLAG_OPTIONS = {
    "acl": (k.MS_POSIXACL, 0),  # (not in config.md's table; runc takes them: a flag, not data)
    "noacl": (0, k.MS_POSIXACL),
    "async": (0, k.MS_SYNCHRONOUS),
    "sync": (k.MS_SYNCHRONOUS, 0),
    "atime": (0, k.MS_NOATIME),
    "noatime": (k.MS_NOATIME, 0),
    "defaults": (0, 0),
    "dev": (0, k.MS_NODEV),
    "nodev": (k.MS_NODEV, 0),
    "diratime": (0, k.MS_NODIRATIME),
    "nodiratime": (k.MS_NODIRATIME, 0),
    "dirsync": (k.MS_DIRSYNC, 0),
    "exec": (0, k.MS_NOEXEC),
    "noexec": (k.MS_NOEXEC, 0),
    "iversion": (1 << 23, 0),
    "noiversion": (0, 1 << 23),
    "lazytime": (k.MS_LAZYTIME, 0),
    "nolazytime": (0, k.MS_LAZYTIME),
    "loud": (0, k.MS_SILENT),
    "silent": (k.MS_SILENT, 0),
    "mand": (k.MS_MANDLOCK, 0),
    "nomand": (0, k.MS_MANDLOCK),
    "relatime": (k.MS_RELATIME, 0),
    "norelatime": (0, k.MS_RELATIME),
    "strictatime": (k.MS_STRICTATIME, 0),
    "nostrictatime": (0, k.MS_STRICTATIME),
    "suid": (0, k.MS_NOSUID),
    "nosuid": (k.MS_NOSUID, 0),
    "symfollow": (0, k.MS_NOSYMFOLLOW),
    "nosymfollow": (k.MS_NOSYMFOLLOW, 0),
    "ro": (k.MS_RDONLY, 0),
    "rw": (0, k.MS_RDONLY),
    "remount": (k.MS_REMOUNT, 0),
    "bind": (k.MS_BIND, 0),
    "rbind": (k.MS_BIND | k.MS_REC, 0),
}

PROPAGATION_OPTIONS = {
    "private": k.MS_PRIVATE,
    "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED,
    "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE,
    "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE,
    "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}

# recursive options -> (attr_set, attr_clr) for mount_setattr(AT_RECURSIVE)
RECURSIVE_OPTIONS = {
    "rro": (k.MOUNT_ATTR_RDONLY, 0),
    "rrw": (0, k.MOUNT_ATTR_RDONLY),
    "rnosuid": (k.MOUNT_ATTR_NOSUID, 0),
    "rsuid": (0, k.MOUNT_ATTR_NOSUID),
    "rnodev": (k.MOUNT_ATTR_NODEV, 0),
    "rdev": (0, k.MOUNT_ATTR_NODEV),
    "rnoexec": (k.MOUNT_ATTR_NOEXEC, 0),
    "rexec": (0, k.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (k.MOUNT_ATTR_NODIRATIME, 0),
    "rdiratime": (0, k.MOUNT_ATTR_NODIRATIME),
    "rnoatime": (k.MOUNT_ATTR_NOATIME, k.MOUNT_ATTR__ATIME),
    "ratime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
    "rrelatime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
    "rnorelatime": (k.MOUNT_ATTR_STRICTATIME, k.MOUNT_ATTR__ATIME),
    "rstrictatime": (k.MOUNT_ATTR_STRICTATIME, k.MOUNT_ATTR__ATIME),
    "rnostrictatime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
    "rnosymfollow": (k.MOUNT_ATTR_NOSYMFOLLOW, 0),
    "rsymfollow": (0, k.MOUNT_ATTR_NOSYMFOLLOW),
}

# flags a bind remount must keep when they are locked on the source (user namespaces)
_LOCKABLE = (
    (posix.ST_NOSUID, k.MS_NOSUID),
    (posix.ST_NODEV, k.MS_NODEV),
    (posix.ST_NOEXEC, k.MS_NOEXEC),
    (posix.ST_RDONLY, k.MS_RDONLY),
)

DEFAULT_DEVICES = (  # config-linux.md "Default Devices": name, major, minor
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
DEFAULT_SYMLINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)


@record
class ParsedOptions:
    flags: int = 0
    clear: int = 0
    propagation: list[int] = field(default_factory=list)
    recursive_set: int = 0
    recursive_clear: int = 0
    data: list[str] = field(default_factory=list)
    idmap: bool = False
    copyup: bool = False  # tmpcopyup (runc's, asked for by podman's --tmpfs)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & k.MS_BIND)


def parse_options(options: list[str]) -> ParsedOptions:
    out = ParsedOptions()
    for opt in options:
        if opt in FLAG_OPTIONS:
            s, c = FLAG_OPTIONS[opt]
            out.flags = (out.flags | s) & ~c
            out.clear |= c
        elif opt in PROPAGATION_OPTIONS:
            out.propagation.append(PROPAGATION_OPTIONS[opt])
        elif opt in RECURSIVE_OPTIONS:
            s, c = RECURSIVE_OPTIONS[opt]
            # cleared, then set: an atime option clears the whole atime field and sets its value
            out.recursive_set = (out.recursive_set & ~c) | s
            out.recursive_clear |= c
        elif opt in IDMAP_OPTIONS:
            out.idmap = True
        elif opt == "tmpcopyup":
            out.copyup = True
        else:
            out.data.append(opt)
    return out


class Rootfs:
    def __init__(self, kernel: k.Kernel, spec: RootfsSpec, before_cgroup=None):
        self.k = kernel
        self.spec = spec
        self.before_cgroup = before_cgroup  # called before a cgroup filesystem is mounted
        self.root_fd = -1
        self.late_readonly: list[tuple[int, int, bool]] = []  # (fd, flags, whole superblock)
        self.propagations: list[tuple[str, list[int]]] = []  # each mount's own, in config order
        self.proc_dir: str | None = None  # the container's /proc as the host sees it (resolved)

    # -- top level -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything before pivot_root: propagation, the rootfs bind, the config's mounts, /dev."""
        s = self.spec
        # rslave (or rprivate) until pivot_root: nothing we mount leaks to the host, and the rootfs
        # can be bound; rootfsPropagation itself is applied after pivot_root
        private = s.propagation in ("private", "rprivate")
        self.k.mount(None, "/", None, k.MS_REC | (k.MS_PRIVATE if private else k.MS_SLAVE), None)
        self.k.mount(s.rootfs, s.rootfs, None, k.MS_BIND | k.MS_REC, None)
        self.root_fd = self.k.open(s.rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        dev_bound = False  # the last mount on /dev a bind: its devices are the source's
        for i, m in enumerate(s.mounts):
            self.mount_entry(i, m)
            if paths.normpath(m.get("destination", "")) == "/dev":
                dev_bound = m.get("type") == "bind" or parse_options(m.get("options") or []).is_bind
        if not dev_bound:  # config-linux.md: supplied whatever /dev is (runc's rule too)
            self.default_devices()
        for i, dev in enumerate(s.devices):
            self.create_device(dev, f"/linux/devices/{i}")
        for i in s.source_trees:  # bind sources the init could reach itself: not needed
            fd = s.idmap_fds.pop(i, None)
            if fd is not None:
                self.k.close(fd)

    def pivot(self) -> None:
        s = self.spec
        self.seal_readonly()
        if s.no_pivot:
            self.hide_host_kernel_filesystems()
            self.k.chdir(s.rootfs)
            self.k.mount(s.rootfs, "/", None, k.MS_MOVE, None)
            self.k.chroot(".")
        else:
            old = self.k.open("/", posix.O_DIRECTORY | posix.O_RDONLY | posix.O_CLOEXEC)
            new = self.k.open(s.rootfs, posix.O_DIRECTORY | posix.O_RDONLY | posix.O_CLOEXEC)
            self.k.fchdir(new)
            self.k.pivot_root(".", ".")
            self.k.fchdir(old)
            self.k.mount(None, ".", None, k.MS_SLAVE | k.MS_REC, None)
            self.k.umount(".", k.MNT_DETACH)
            self.k.close(old)
            self.k.close(new)
        self.k.chdir("/")
        if self.root_fd >= 0:
            self.k.close(self.root_fd)
            self.root_fd = -1

    def finish(self) -> None:
        """After pivot_root: read-only paths, masked paths (over them, as runc orders the two),
        then a read-only root."""
        for what, paths_, do in (
            ("readonlyPaths", self.spec.readonly_paths, self.make_readonly),
            ("maskedPaths", self.spec.masked, self.mask),
        ):
            for i, path in enumerate(paths_):
                try:
                    do(path)
                except OSError as e:  # (a masked file with no /dev/null to bind over it, say)
                    raise OcirtError(f"/linux/{what}/{i}: {describe_oserror(e, path)}", e.errno) from None
        if self.spec.readonly:
            self._root_readonly()
        if self.spec.propagation:  # last: "unbindable" would forbid the binds above
            self.k.mount(None, "/", None, PROPAGATION_OPTIONS[self.spec.propagation] | k.MS_REC, None)
            # then each mount's own again, which that recursive change overrode (config.md: a
            # mount's propagation options apply to it, whatever the rootfs's is)
            for dest, props in self.propagations:
                for prop in props:
                    self.k.mount(None, dest, None, prop, None)

    # -- mounts ----------------------------------------------------------------------------------
    def mount_entry(self, index: int, m: dict) -> None:
        where = f"/mounts/{index}"
        dest = m.get("destination", "")
        if not dest.startswith("/"):
            dest = "/" + dest  # runc resolves relative destinations against the rootfs root
        dest = paths.normpath(dest)  # lexically, as runc cleans it: "/mnt/../x" needs no /mnt
        if not dest.strip("/"):  # "", "/.", "//", "/proc/../..": over the root
            raise ConfigError(f"{where}/destination", "is the container's root itself")
        mtype = m.get("type") or ""
        opts = parse_options(m.get("options") or [])
        source = m.get("source") or mtype or "none"
        if mtype == "bind":
            opts.flags |= k.MS_BIND
        if opts.is_bind and not m.get("source"):  # else "bind", the stand-in, would be looked up
            raise ConfigError(f"{where}/source", "a bind mount needs a source")
        tree = self.spec.idmap_fds.get(index)
        if tree is None and needs_idmap(m):  # check_config made one for every such mount
            raise ConfigError(f"{where}/options", "idmapped mount without its prepared tree")
        fallback = None  # a bind source opened by the parent, for when ours is refused
        if tree is not None and index in self.spec.source_trees:
            tree, fallback = None, tree
        if mtype == "cgroup" and not opts.is_bind:
            if self.before_cgroup is not None:
                self.before_cgroup()
            return self.mount_cgroup(where, dest, opts)
        if mtype in ("proc", "sysfs") and not opts.is_bind:
            self._refuse_symlink(dest, mtype, where)
        directory = True
        if opts.is_bind:
            directory = (
                self._source_is_dir(source, where)
                if fallback is None
                else self._source_is_dir(source, where, fallback)
            )
        # the mount point as ensure() opened it: the first mount goes there (no second lookup)
        target = self.ensure(dest, directory=directory, pointer=f"{where}/destination")
        if opts.is_bind or mtype not in NO_PROC_CHECK:
            try:
                self.check_proc_mount(target, source, where)
            except BaseException:
                self.k.close(target)
                raise
        data = ",".join(opts.data) or None
        try:
            if tree is not None:  # idmapped: the parent's detached tree, moved onto the mount point
                self._move_tree(tree, dest, where, source)
            elif opts.is_bind:
                try:
                    self.k.mount(
                        source, self.k.fd_path(target), None, opts.flags & (k.MS_BIND | k.MS_REC), None
                    )
                except OSError as e:  # only where the user namespace may not look the source up
                    if fallback is None or e.errno != errno.EACCES:
                        raise
                    self.spec.idmap_fds.pop(index, None)
                    self._move_tree(fallback, dest, where, source)
            else:
                data = lsm.mount_data(data, self.spec.mount_label, mtype or None)
                flags = opts.flags
                late = bool(flags & k.MS_RDONLY) and (mtype == "tmpfs" or paths.normpath(dest) == "/dev")
                if late:  # writable until everything under it is made: seal_readonly
                    flags &= ~k.MS_RDONLY
                covered = None
                if opts.copyup and mtype == "tmpfs":
                    # opened before the tmpfs goes on top: this fd still reaches the old contents
                    covered = self.k.open_in_root(self.root_fd, dest, posix.O_RDONLY | posix.O_DIRECTORY)
                try:
                    self.k.mount(source, self.k.fd_path(target), mtype or None, flags, data)
                    if late:
                        self.late_readonly.append(
                            (
                                self.k.open_in_root(self.root_fd, dest, posix.O_PATH),
                                opts.flags,
                                mtype == "tmpfs",
                            )
                        )
                    if covered is not None:
                        self._copy_up(covered, dest, where)
                finally:
                    if covered is not None:
                        self.k.close(covered)
            if opts.is_bind:
                extra = opts.flags & ~(k.MS_BIND | k.MS_REC)
                if extra & ~k.MS_REMOUNT:
                    self._remount_bind(dest, extra)
            for prop in opts.propagation:
                self._at(dest, lambda t, prop=prop: self.k.mount(None, t, None, prop, None))
            if opts.propagation:
                self.propagations.append((dest, opts.propagation))
            if opts.recursive_set or opts.recursive_clear:
                self._at(dest, lambda t: self.k.mount_setattr(t, opts.recursive_set, opts.recursive_clear))
        except OSError as e:
            raise OcirtError(f"{where}: mount {source} to {dest} ({mtype or 'bind'})", e.errno) from None
        finally:
            self.k.close(target)

    def _copy_up(self, covered: int, dest: str, where: str) -> None:
        """tmpcopyup: what the tmpfs covers, copied onto it; a failure names the copy (a tmpfs
        too small for it: ENOSPC), not the mount, which went well."""
        fresh = self.k.open_in_root(self.root_fd, dest, posix.O_RDONLY | posix.O_DIRECTORY)
        try:
            self.k.copy_tree(covered, fresh)
        except OSError as e:
            name = f" ({e.filename})" if isinstance(e.filename, str) else ""
            raise OcirtError(
                f"{where}: tmpcopyup: copy what {dest} held onto its tmpfs{name}", e.errno
            ) from None
        finally:
            self.k.close(fresh)

    def _move_tree(self, tree: int, dest: str, where: str, source: str) -> None:
        fd = self.k.open_in_root(self.root_fd, dest, posix.O_PATH)
        try:
            self.k.move_mount(tree, fd)
        except OSError as e:
            raise OcirtError(f"{where}: move the idmapped mount of {source} to {dest}", e.errno) from None
        finally:
            self.k.close(fd)
            self.k.close(tree)

    def check_proc_mount(self, target: int, source: str, where: str) -> None:
        """runc's rule for a bind (or a filesystem type it does not know) where the container's
        /proc is, the mount point as resolved (through the symlinks in the rootfs): on /proc
        itself only a procfs, inside it only the files lxcfs stands in for; nothing that would
        cover what the masked and read-only paths protect, or the files of /proc/self an LSM
        reads (CVE-2019-16884)."""
        at = self.k.fd_target(target)
        if self.proc_dir is None:
            self.proc_dir = self.k.fd_target(self.root_fd).rstrip("/") + "/proc"
        proc = self.proc_dir
        if at != proc and not at.startswith(proc + "/"):
            return
        inside = at[len(proc) + 1 :]
        if not inside:
            if _fstype_of(source) == "proc":
                return
            raise ConfigError(
                f"{where}/destination", f'"{at}" cannot be mounted because it is not of type proc'
            )
        if inside not in LXCFS_PROC_FILES:
            raise ConfigError(f"{where}/destination", f'"{at}" cannot be mounted because it is inside /proc')

    def _at(self, path: str, fn) -> None:
        """Call fn with the /proc/self/fd path of `path` opened now: after a mount, the new top."""
        fd = self.k.open_in_root(self.root_fd, path, posix.O_PATH)
        try:
            fn(self.k.fd_path(fd))
        finally:
            self.k.close(fd)

    def _source_is_dir(self, source: str, where: str, fallback: int | None = None) -> bool:
        try:
            return stat.S_ISDIR(self.k.stat_mode(source))
        except OSError as e:
            if fallback is None or e.errno != errno.EACCES:
                raise OcirtError(f"{where}/source: {source}", e.errno) from None
        return stat.S_ISDIR(posix.fstat(fallback).st_mode)  # what the user namespace cannot reach

    def _refuse_symlink(self, dest: str, mtype: str, where: str) -> None:
        """proc and sysfs only on an ordinary directory (runc's rule): through a symlink, a procfs
        would land where the masked paths do not look for it."""
        parent, name = paths.split(paths.normpath(dest))
        if not name:
            return
        try:
            pfd = self.k.open_in_root(self.root_fd, parent, posix.O_PATH)
        except OSError:
            return  # ensure() says what is wrong with the way there
        try:
            target = self.k.readlink(paths.join(self.k.fd_path(pfd), name))
        except OSError:
            return  # not a symlink (or missing: made as a directory)
        finally:
            self.k.close(pfd)
        raise OcirtError(
            f"{where}/destination: {dest} is a symlink (to {target}) in the rootfs: "
            f"{mtype} must be mounted on an ordinary directory"
        )

    def seal_readonly(self) -> None:
        """The read-only tmpfs mounts (and /dev) made read-only, now that what goes under them is
        made: the whole superblock for a tmpfs (its own), the mount only for anything else."""
        while self.late_readonly:
            fd, flags, whole = self.late_readonly.pop(0)
            try:
                how = (
                    k.MS_REMOUNT | flags
                    if whole
                    else k.MS_BIND | k.MS_REMOUNT | flags | self._locked_flags(self.k.fd_path(fd))
                )
                self.k.mount(None, self.k.fd_path(fd), None, how, None)
            except OSError as e:
                raise OcirtError(f"remount {self.k.fd_path(fd)} read-only", e.errno) from None
            finally:
                self.k.close(fd)

    @staticmethod
    def mountinfo() -> bytes:
        """This mount namespace's /proc/self/mountinfo (read, never changed: not a Kernel call)."""
        with open("/proc/self/mountinfo", "rb") as f:
            return f.read()

    def hide_host_kernel_filesystems(self) -> None:
        """--no-pivot: the host's mounts stay in the container's mount namespace, under its root.
        Every fully visible procfs and sysfs among them is unmounted (or covered, where a user
        namespace may not unmount it), so none is left for a nested namespace to point to."""
        for path in visible_kernel_mounts(self.mountinfo(), self.spec.rootfs):
            try:
                self.k.umount(path, k.MNT_DETACH)
            except FileNotFoundError:
                continue  # under one unmounted already
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.EPERM):
                    raise OcirtError(f"--no-pivot: unmount {path}", e.errno) from None
                try:
                    self.k.mount(
                        "tmpfs", path, "tmpfs", k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, None
                    )
                except OSError as e2:
                    raise OcirtError(f"--no-pivot: cover {path}", e2.errno) from None

    def mount_cgroup(self, where: str, dest: str, opts: ParsedOptions) -> None:
        ro = opts.flags & k.MS_RDONLY
        base = opts.flags & (k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC)
        self.k.close(self.ensure(dest, directory=True, pointer=f"{where}/destination"))
        try:
            if self.spec.cgroup2:
                try:
                    self._at(dest, lambda t: self.k.mount("cgroup2", t, "cgroup2", opts.flags, None))
                except OSError as e:
                    # In a user namespace cgroup2 may be refused (no cgroup namespace of its
                    # own, or one the user namespace does not own): bind the container's
                    # cgroup directory instead, as runc does.
                    whole = [d for d, name in self.spec.cgroup_binds if name == ""]
                    if e.errno not in (errno.EPERM, errno.EBUSY) or not whole:
                        raise
                    self._at(dest, lambda t: self.k.mount(whole[0], t, None, k.MS_BIND | k.MS_REC, None))
                    self._remount_bind(dest, base | ro)
                return
            # the tmpfs holding the hierarchies nosuid, nodev and noexec whatever the options
            # say, as runc mounts it; the hierarchies' binds with the options' flags
            tmpfs = k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC
            self._at(dest, lambda t: self.k.mount("tmpfs", t, "tmpfs", tmpfs, "mode=755"))
            self._bind_hierarchies(dest, base | ro)
            if ro:
                self._at(
                    dest,
                    lambda t: self.k.mount(None, t, None, k.MS_REMOUNT | k.MS_RDONLY | tmpfs, "mode=755"),
                )
        except OSError as e:
            raise OcirtError(f"{where}: mount cgroup to {dest}", e.errno) from None

    def _bind_hierarchies(self, dest: str, flags: int) -> None:
        """cgroup v1: each hierarchy's directory of the container bound under `dest`, the tmpfs
        just mounted there, and remounted with `flags`. The tmpfs is empty: the mount points
        are made in it at once, without ensure()'s lookup first (10 hierarchies here, on the
        init's way to the exec)."""
        top = self.k.open_in_root(self.root_fd, dest, posix.O_PATH | posix.O_DIRECTORY)
        try:
            for host_dir, name in self.spec.cgroup_binds:
                self.k.mkdir(paths.join(self.k.fd_path(top), name), 0o755)
                sub = paths.join(dest, name)
                self._at(sub, lambda t, d=host_dir: self.k.mount(d, t, None, k.MS_BIND | k.MS_REC, None))
                self._at(sub, lambda t: self.k.mount(None, t, None, k.MS_BIND | k.MS_REMOUNT | flags, None))
        finally:
            self.k.close(top)

    # -- paths inside the rootfs -----------------------------------------------------------------
    def ensure(self, path: str, directory: bool, pointer: str, mode: int = 0o755, hops: int = 0) -> int:
        """Open `path` under the rootfs (O_PATH), creating it (and its parents) when missing.

        A dangling symlink on the way is followed as the kernel would inside the rootfs: what it
        points to is created there (never outside: every open resolves in the root).
        """
        try:
            return self.k.open_in_root(self.root_fd, path, posix.O_PATH)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise OcirtError(f"{pointer}: {path}", e.errno) from None
        parent, name = paths.split(paths.normpath("/" + path.lstrip("/")))
        if not name or hops > 40:
            raise OcirtError(f"{pointer}: cannot create {path}")
        pfd = self.ensure(parent, directory=True, pointer=pointer, hops=hops)
        entry = paths.join(self.k.fd_path(pfd), name)
        try:
            if directory:
                self.k.mkdir(entry, mode)
            else:
                self.k.close(
                    self.k.open(
                        entry, posix.O_CREAT | posix.O_WRONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW, 0o644
                    )
                )
        except FileExistsError:
            try:
                target = self.k.readlink(entry)
            except OSError:
                target = None  # something made it meanwhile
            if target is not None:  # a dangling symlink: make its target, inside the rootfs
                self.k.close(self.ensure(paths.join(parent, target), directory, pointer, mode, hops + 1))
        except OSError as e:
            raise OcirtError(f"{pointer}: create {path}", e.errno) from None
        finally:
            self.k.close(pfd)
        return self.k.open_in_root(self.root_fd, path, posix.O_PATH)

    # -- /dev ------------------------------------------------------------------------------------
    def default_devices(self) -> None:
        for name, major, minor in DEFAULT_DEVICES:
            self.create_device(
                {
                    "path": f"/dev/{name}",
                    "type": "c",
                    "major": major,
                    "minor": minor,
                    "fileMode": 0o666,
                    "uid": 0,
                    "gid": 0,
                },
                "/linux/devices",
            )
        dev = self.k.open_in_root(self.root_fd, "/dev", posix.O_PATH | posix.O_DIRECTORY)
        try:
            for target, name in DEFAULT_SYMLINKS + (("pts/ptmx", "ptmx"),):
                try:
                    self.k.symlink(target, paths.join(self.k.fd_path(dev), name))
                except FileExistsError:
                    pass
        finally:
            self.k.close(dev)

    def create_device(self, dev: dict, where: str) -> None:
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        kind = kinds[dev["type"]]
        path = paths.normpath("/" + dev["path"].lstrip("/"))
        parent, name = paths.split(path)
        pfd = self.ensure(parent, directory=True, pointer=f"{where}/path")
        full = paths.join(self.k.fd_path(pfd), name)
        try:
            if self.spec.in_userns and kind != stat.S_IFIFO:
                self._bind_host_device(path, full, where)
            else:
                try:
                    self.k.mknod(
                        full,
                        kind | (dev.get("fileMode", 0o666) & 0o7777),
                        posix.makedev(dev.get("major", 0), dev.get("minor", 0)),
                    )
                except FileExistsError:
                    # an existing node (from the image) is replaced
                    try:
                        posix.unlink(full)
                    except OSError as e:
                        if e.errno != errno.EBUSY:
                            raise
                        return  # a mount of the config's is there: it stays (runc keeps it too)
                    self.k.mknod(
                        full,
                        kind | (dev.get("fileMode", 0o666) & 0o7777),
                        posix.makedev(dev.get("major", 0), dev.get("minor", 0)),
                    )
                self.k.chown(full, dev.get("uid", 0), dev.get("gid", 0))
        except OSError as e:
            raise OcirtError(f"{where}: create device {path}", e.errno) from None
        finally:
            self.k.close(pfd)

    def _bind_host_device(self, path: str, full: str, where: str) -> None:
        try:
            fd = self.k.open(full, posix.O_CREAT | posix.O_WRONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW, 0o644)
            self.k.close(fd)
        except FileExistsError:
            pass
        self.k.mount(path, full, None, k.MS_BIND, None)

    # -- after pivot_root ------------------------------------------------------------------------
    def mask(self, path: str) -> None:
        try:
            st = posix.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            try:
                self.k.mount("/dev/null", path, None, k.MS_BIND, None)
                return
            except NotADirectoryError:  # a symlink to a directory (runc's fallback too)
                pass
        self.k.mount("tmpfs", path, "tmpfs", k.MS_RDONLY, None)

    def make_readonly(self, path: str) -> None:
        if paths.normpath(path) == "/":
            # The root itself, as root.readonly does it: a bind stacked on "/" would not be the
            # root of this process (its "/" is the mount below), but it is of every process
            # that joins the mount namespace later (`exec`), which got a writable root
            self._root_readonly()
            return
        try:
            self.k.mount(path, path, None, k.MS_BIND | k.MS_REC, None)
        except FileNotFoundError:
            return
        self.k.mount(
            None,
            path,
            None,
            k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_REC | self._locked_flags(path),
            None,
        )

    def _root_readonly(self) -> None:
        self.k.mount(None, "/", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | self._locked_flags("/"), None)

    def _remount_bind(self, dest: str, flags: int) -> None:
        """Remount the bind at `dest` with `flags`; in a user namespace with the flags the kernel
        locked on it too (it refuses a remount that would clear them)."""
        self._at(
            dest,
            lambda t: self.k.mount(
                None,
                t,
                None,
                k.MS_BIND | k.MS_REMOUNT | flags | (self._locked_flags(t) if self.spec.in_userns else 0),
                None,
            ),
        )

    def _locked_flags(self, path: str) -> int:
        try:
            f_flag = posix.statvfs(path).f_flag
        except OSError:
            return 0
        return sum(ms for st, ms in _LOCKABLE if f_flag & st and ms != k.MS_RDONLY)


def visible_kernel_mounts(mountinfo: bytes, rootfs: str) -> list[str]:
    """Mount points of the procfs and sysfs mounts showing their whole filesystem (root "/"),
    outside `rootfs`, from /proc/self/mountinfo's text."""
    out = []
    inside = rootfs.rstrip("/") + "/"
    for root, path, _options, fstype in mount_entries(mountinfo):
        if (
            root == b"/"
            and fstype in (b"proc", b"sysfs")
            and path + "/" != inside
            and not path.startswith(inside)
        ):
            out.append(path)
    return out


def mount_entries(mountinfo: bytes):
    """Each line of /proc/self/mountinfo's text as (root, mount point, mount options, filesystem
    type): the mount point unescaped and decoded, the rest as bytes (options a set)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            sep = fields.index(b"-", 6)
        except ValueError:
            continue
        fstype = fields[sep + 1] if len(fields) > sep + 1 else None
        yield fields[3], paths.fsdecode(_unescape(fields[4])), set(fields[5].split(b",")), fstype


def _unescape(field_: bytes) -> bytes:
    """mountinfo's octal escapes (\\040 for a space, ...) undone."""
    if b"\\" not in field_:
        return field_
    out, i = bytearray(), 0
    while i < len(field_):
        chunk = field_[i + 1 : i + 4]
        if field_[i] == 0x5C and len(chunk) == 3 and all(0x30 <= c <= 0x37 for c in chunk):
            out.append(int(chunk, 8))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return bytes(out)


def open_bind_sources(kernel: k.Kernel, spec: RootfsSpec) -> list[int]:
    """In the parent, before fork, for a container with a new user namespace: every bind source
    (not idmapped) opened as a detached tree (open_tree(OPEN_TREE_CLONE)) with the runtime's
    credentials, as runc opens bind sources before it enters the user namespace. The init binds
    a source itself when it can (the bind then keeps the flags the kernel locks on the copy of the
    host's mounts); where the user namespace cannot reach it (permission denied), it moves this
    tree in instead. Such a tree comes from the runtime's mount namespace, so the kernel locks
    none of its flags against the container's root: a source whose mounts are read-only, nosuid,
    nodev or noexec (flags the container must not lift) gets no tree, and its bind fails as
    before. A source the runtime cannot open either is left to the init's error. Adds the trees
    to spec.idmap_fds and their indexes to spec.source_trees; returns the new fds."""
    prop = k.MS_PRIVATE if spec.propagation in ("private", "rprivate") else k.MS_SLAVE
    made = []
    for i, m in enumerate(spec.mounts):
        source = m.get("source") or ""
        opts = parse_options(m.get("options") or [])
        if m.get("type") == "bind":
            opts.flags |= k.MS_BIND
        if not opts.is_bind or i in spec.idmap_fds or needs_idmap(m) or not source.startswith("/"):
            continue
        recursive = bool(opts.flags & k.MS_REC)
        if has_lockable_flags(source, recursive):
            continue
        flags = k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC | (k.AT_RECURSIVE if recursive else 0)
        try:
            fd = kernel.open_tree(source, flags)
        except OSError:
            continue
        try:  # like the init's binds: nothing made under it reaches the host
            kernel.mount_setattr_fd(fd, 0, 0, prop, recursive=True)
        except OSError:
            kernel.close(fd)
            continue
        spec.idmap_fds[i] = fd
        spec.source_trees.append(i)
        made.append(fd)
    return made


_LOCKABLE_OPTIONS = {b"ro", b"nosuid", b"nodev", b"noexec"}


# mount types runc mounts without its /proc check (check_proc_mount); binds and any other type
# get it
NO_PROC_CHECK = frozenset({"proc", "sysfs", "mqueue", "tmpfs", "cgroup"})
# what may be bound inside the container's /proc: the files lxcfs emulates (runc's list)
LXCFS_PROC_FILES = frozenset(
    {
        "cpuinfo",
        "diskstats",
        "meminfo",
        "stat",
        "swaps",
        "uptime",
        "loadavg",
        "slabinfo",
        "net/dev",
        "sys/kernel/ns_last_pid",
    }
)


def _fstype_of(path: str, mountinfo: bytes | None = None) -> str | None:
    """The filesystem type of the mount `path` is on (the last mounted of those whose mount point
    is it or above it), from this process's mountinfo; None where it cannot be told."""
    try:
        where = paths.realpath(path)
        text = Rootfs.mountinfo() if mountinfo is None else mountinfo
    except OSError:
        return None
    found = None
    for _root, point, _options, fstype in mount_entries(text):
        if (where == point or where.startswith(point.rstrip("/") + "/")) and (
            found is None or len(point) >= len(found[0])
        ):
            found = (point, fstype)
    return None if found is None or found[1] is None else paths.fsdecode(found[1])


def has_lockable_flags(source: str, recursive: bool, mountinfo: bytes | None = None) -> bool:
    """Is the mount of `source` (with `recursive`, any mount under it too, from `mountinfo` or
    this process's) read-only, nosuid, nodev or noexec? (One that cannot be looked at: yes.)"""
    try:
        if posix.statvfs(source).f_flag & (
            posix.ST_RDONLY | posix.ST_NOSUID | posix.ST_NODEV | posix.ST_NOEXEC
        ):
            return True
        if not recursive:
            return False
        under = paths.realpath(source).rstrip("/") + "/"
        text = Rootfs.mountinfo() if mountinfo is None else mountinfo
    except OSError:
        return True
    return any(
        point.startswith(under) and _LOCKABLE_OPTIONS & options
        for _, point, options, _ in mount_entries(text)
    )


def sysctl(kernel: k.Kernel, settings: dict) -> None:
    for key, value in settings.items():
        path = "/proc/sys/" + namespaces.sysctl_path(key)
        try:
            kernel.write_file(path, str(value))
        except OSError as e:
            raise OcirtError(f"{json_pointer(('linux', 'sysctl', key))}: write {path}", e.errno) from None
