"""A recording double of the syscall layer: it performs nothing and remembers every call.

Paths opened with `open`/`open_in_root` get fake fds, and `fd_path` maps them back to the logical
path, so a recorded `mount` reads `mount('proc', '/rootfs/proc', ...)` rather than a /proc/self/fd link.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from . import PR_GET_DUMPABLE, Kernel


@dataclass
class Call:
    name: str
    args: tuple

    def __str__(self) -> str:
        return f"{self.name}({', '.join(_fmt(a) for a in self.args)})"


def _fmt(value) -> str:
    if isinstance(value, int) and value > 9:
        return hex(value)
    return repr(value)


@dataclass
class RecordingKernel(Kernel):
    calls: list[Call] = field(default_factory=list)
    fail: dict[str, OSError] = field(default_factory=dict)  # call name -> error to raise
    _fds: dict[int, str] = field(default_factory=dict)
    _next_fd: int = 100

    def _record(self, name: str, *args) -> None:
        self.calls.append(Call(name, args))
        if name in self.fail:
            raise self.fail[name]

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def find(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def _new_fd(self, path: str) -> int:
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = path
        return fd

    def _resolve(self, path: str, dir_fd: int | None) -> str:
        if dir_fd is not None and not path.startswith("/"):
            return posixpath.join(self._fds.get(dir_fd, f"<fd {dir_fd}>"), path)
        return path

    def fd_path(self, fd: int) -> str:
        return self._fds.get(fd, f"/proc/self/fd/{fd}")

    def fd_target(self, fd: int) -> str:
        path = self.fd_path(fd)
        return self.links.get(path, path)  # (a symlink opened: where it leads, one hop)

    # every interface method records itself
    def unshare(self, flags):
        self._record("unshare", flags)

    def setns(self, fd, nstype):
        self._record("setns", self.fd_path(fd), nstype)

    def mount(self, source, target, fstype, flags, data):
        self._record("mount", source, target, fstype, flags, data)

    def umount(self, target, flags=0):
        self._record("umount", target, flags)

    def pivot_root(self, new_root, put_old):
        self._record("pivot_root", new_root, put_old)

    def mount_setattr(self, path, attr_set, attr_clr, propagation=0, recursive=True):
        self._record("mount_setattr", path, attr_set, attr_clr, propagation, recursive)

    def open_tree(self, path, flags):
        self._record("open_tree", path, flags)
        return self._new_fd(f"<tree {path}>")

    def mount_setattr_fd(self, fd, attr_set, attr_clr, propagation=0, recursive=False, userns_fd=None):
        self._record(
            "mount_setattr",
            self.fd_path(fd),
            attr_set,
            attr_clr,
            propagation,
            recursive,
            None if userns_fd is None else self.fd_path(userns_fd),
        )

    def copy_tree(self, src_fd, dst_fd):
        self._record("copy_tree", self.fd_path(src_fd), self.fd_path(dst_fd))

    def move_mount(self, from_fd, to_fd):
        self._record("move_mount", self.fd_path(from_fd), self.fd_path(to_fd))

    def new_userns(self, uid_map, gid_map):
        self._record("new_userns", uid_map, gid_map)
        lines = (", ".join(m.strip().splitlines()) for m in (uid_map, gid_map))
        return self._new_fd("<userns uid_map={} gid_map={}>".format(*lines))

    def chroot(self, path):
        self._record("chroot", path)

    def chdir(self, path):
        self._record("chdir", path)

    def fchdir(self, fd):
        self._record("fchdir", self.fd_path(fd))

    def open(self, path, flags, mode=0o777, dir_fd=None):
        path = self._resolve(path, dir_fd)
        self._record("open", path, flags)
        return self._new_fd(path)

    def open_in_root(self, root_fd, path, flags, mode=0):
        # RESOLVE_IN_ROOT: ".." stops at the root, as it does for the real call
        inside = posixpath.normpath("/" + path.lstrip("/")).lstrip("/")
        full = posixpath.join(self.fd_path(root_fd), inside).rstrip("/")
        self._record("open_in_root", full, flags)
        return self._new_fd(full)

    def close(self, fd):
        self._fds.pop(fd, None)

    def mkdir(self, path, mode=0o755, dir_fd=None):
        self._record("mkdir", self._resolve(path, dir_fd), mode)

    def mknod(self, path, mode, device, dir_fd=None):
        self._record("mknod", self._resolve(path, dir_fd), mode, os.major(device), os.minor(device))

    def symlink(self, target, path, dir_fd=None):
        self._record("symlink", target, self._resolve(path, dir_fd))

    links: dict = field(default_factory=dict)  # path -> target, for tests of symlinked mount points

    def stat_mode(self, path):
        return os.stat(path).st_mode  # a question, not a step: the host's answer, not recorded

    def readlink(self, path):
        self._record("readlink", path)
        if path not in self.links:
            raise OSError(22, "not a symlink")
        return self.links[path]

    def chmod(self, path, mode):
        self._record("chmod", path, mode)

    def chown(self, path, uid, gid):
        self._record("chown", path, uid, gid)

    def write_file(self, path, data):
        self._record("write_file", path, data)

    def move_self(self, tasks_fd):
        self._record("move_self", self._fds.get(tasks_fd, f"<fd {tasks_fd}>"))

    def mkfifo(self, path, mode):
        self._record("mkfifo", path, mode)

    def close_fds_from(self, first):
        self._record("close_fds_from", first)

    def bpf(self, cmd, attr, pointers):
        # BPF_PROG_LOAD and BPF_PROG_GET_FD_BY_ID make an fd; a BPF_PROG_QUERY finds nothing
        self._record("bpf", cmd, bytes(attr), {off: bytes(b) for off, b in pointers.items()})
        return self._new_fd(f"<bpf {cmd}>") if cmd in (5, 13) else 0

    def join_session_keyring(self, name):
        self._record("join_session_keyring", name)

    def sethostname(self, name):
        self._record("sethostname", name)

    def setdomainname(self, name):
        self._record("setdomainname", name)

    def prctl(self, option, arg2=0, arg3=0, arg4=0, arg5=0):
        self._record("prctl", option, arg2, arg3, arg4, arg5)
        return 1 if option == PR_GET_DUMPABLE else 0  # a process is, unless made otherwise

    def setgroups(self, gids):
        self._record("setgroups", list(gids))

    def setresgid(self, gid):
        self._record("setresgid", gid)

    def setresuid(self, uid):
        self._record("setresuid", uid)

    def umask(self, mask):
        self._record("umask", mask)

    def setrlimit(self, resource_id, soft, hard):
        self._record("setrlimit", resource_id, soft, hard)

    def capset(self, effective, permitted, inheritable):
        self._record("capset", effective, permitted, inheritable)

    def sched_setattr(self, pid, policy, flags, nice, priority, runtime, deadline, period):
        self._record("sched_setattr", pid, policy, flags, nice, priority, runtime, deadline, period)

    def ioprio_set(self, which, who, ioprio):
        self._record("ioprio_set", which, who, ioprio)

    def sched_setaffinity(self, pid, cpus):
        self._record("sched_setaffinity", pid, sorted(cpus))

    affinity: set = field(default_factory=lambda: {0, 1, 2, 3})  # what sched_getaffinity returns

    def sched_getaffinity(self, pid):
        self._record("sched_getaffinity", pid)
        return set(self.affinity)

    def personality(self, persona):
        self._record("personality", persona)
        return 0

    def set_mempolicy(self, mode, nodes):
        self._record("set_mempolicy", mode, sorted(nodes))

    fork_pid: int | str = 4242  # what fork returns: the parent's side (`ocirt plan`: a placeholder)

    def fork(self):
        self._record("fork")
        return self.fork_pid

    def fork_into(self, cgroup_dir):
        self._record("fork_into", cgroup_dir)
        return self.fork_pid

    def waitpid(self, pid):
        self._record("waitpid", pid)

    def execve(self, path, args, env):
        self._record("execve", path, list(args), dict(env))
