"""The syscall layer: every kernel side effect of container setup goes through a `Kernel`.

`LinuxKernel` (ocirt.kernel.linux) performs the calls; `RecordingKernel` (ocirt.kernel.fake)
records them, for unit tests without root and for `ocirt plan`.
"""

from __future__ import annotations

# clone(2) / unshare(2) flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_INTO_CGROUP = 0x200000000  # clone3 only: the child starts in the cgroup args.cgroup names

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_POSIXACL = 0x10000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_DETACH = 0x2

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# ioprio_set(2)
IOPRIO_WHO_PROCESS = 1

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

CLOSE_RANGE_CLOEXEC = 1 << 2

# mount_setattr(2)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000

# open_tree(2), move_mount(2)
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40


class Kernel:
    """The interface. Methods raise OSError (with errno) on failure, like the os module."""

    # namespaces
    def unshare(self, flags: int) -> None:
        raise NotImplementedError

    def setns(self, fd: int, nstype: int) -> None:
        raise NotImplementedError

    # mounts
    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        raise NotImplementedError

    def umount(self, target: str, flags: int = 0) -> None:
        raise NotImplementedError

    def pivot_root(self, new_root: str, put_old: str) -> None:
        raise NotImplementedError

    def mount_setattr(
        self, path: str, attr_set: int, attr_clr: int, propagation: int = 0, recursive: bool = True
    ) -> None:
        raise NotImplementedError

    # the new mount API on detached trees (idmapped mounts)
    def open_tree(self, path: str, flags: int) -> int:
        """open_tree(AT_FDCWD, path, flags): with OPEN_TREE_CLONE, a detached copy of the mount
        at `path` (of its subtree too with AT_RECURSIVE), as an fd."""
        raise NotImplementedError

    def mount_setattr_fd(
        self,
        fd: int,
        attr_set: int,
        attr_clr: int,
        propagation: int = 0,
        recursive: bool = False,
        userns_fd: int | None = None,
    ) -> None:
        """mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE]); MOUNT_ATTR_IDMAP takes
        `userns_fd`, the user namespace whose mapping the mount gets."""
        raise NotImplementedError

    def copy_tree(self, src_fd: int, dst_fd: int) -> None:
        """Copy the tree of directory src_fd into directory dst_fd, keeping types, modes,
        owners and times (ocirt/copyup.py; for the `tmpcopyup` mount option)."""
        raise NotImplementedError

    def move_mount(self, from_fd: int, to_fd: int) -> None:
        """move_mount(from_fd, "", to_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH):
        attach the tree of from_fd on the (already resolved) mount point to_fd."""
        raise NotImplementedError

    def new_userns(self, uid_map: str, gid_map: str) -> int:
        """An fd of a new user namespace with these uid_map/gid_map lines and no process in it
        (a helper child is forked to hold it while the maps are written, then killed and reaped).
        Its only use: the mapping of an idmapped mount."""
        raise NotImplementedError

    def chroot(self, path: str) -> None:
        raise NotImplementedError

    def chdir(self, path: str) -> None:
        raise NotImplementedError

    def fchdir(self, fd: int) -> None:
        raise NotImplementedError

    # files, resolved safely
    def open(self, path: str, flags: int, mode: int = 0o777, dir_fd: int | None = None) -> int:
        raise NotImplementedError

    def open_in_root(self, root_fd: int, path: str, flags: int, mode: int = 0) -> int:
        """openat2(root_fd, path, RESOLVE_IN_ROOT): symlinks can never leave root_fd."""
        raise NotImplementedError

    def fd_path(self, fd: int) -> str:
        return f"/proc/self/fd/{fd}"

    def fd_target(self, fd: int) -> str:
        """The path an open fd leads to, as the kernel resolved it."""
        return self.readlink(self.fd_path(fd))

    def close(self, fd: int) -> None:
        raise NotImplementedError

    def mkdir(self, path: str, mode: int = 0o755, dir_fd: int | None = None) -> None:
        raise NotImplementedError

    def mknod(self, path: str, mode: int, device: int, dir_fd: int | None = None) -> None:
        raise NotImplementedError

    def symlink(self, target: str, path: str, dir_fd: int | None = None) -> None:
        raise NotImplementedError

    def readlink(self, path: str) -> str:
        raise NotImplementedError

    def stat_mode(self, path: str) -> int:
        """st_mode of a path of the caller's (a bind mount's source), through symlinks."""
        raise NotImplementedError

    def chmod(self, path: str, mode: int) -> None:
        raise NotImplementedError

    def chown(self, path: str, uid: int, gid: int) -> None:
        raise NotImplementedError

    def write_file(self, path: str, data: str | bytes) -> None:
        raise NotImplementedError

    def move_self(self, tasks_fd: int) -> None:
        """Write 0 to an open cgroup v1 `tasks` file: the calling thread moves itself, alone,
        into that cgroup (for a process of one thread, the whole process). The kernel takes no
        lock over every thread group for that move, so it waits for no RCU grace period, as a
        write to cgroup.procs (or of another thread's id to `tasks`) does."""
        raise NotImplementedError

    def mkfifo(self, path: str, mode: int) -> None:
        raise NotImplementedError

    def close_fds_from(self, first: int) -> None:
        """Mark every fd >= first close-on-exec."""
        raise NotImplementedError

    def bpf(self, cmd: int, attr: bytearray, pointers: dict) -> int:
        """bpf(2) with `attr` (bytes of union bpf_attr, updated in place with what the kernel
        writes back); `pointers` maps an offset in attr to a buffer whose address goes there.
        Returns what the call returns (an fd for the commands that make one)."""
        raise NotImplementedError

    # identity and process attributes
    def join_session_keyring(self, name: str) -> None:
        raise NotImplementedError

    def sethostname(self, name: str) -> None:
        raise NotImplementedError

    def setdomainname(self, name: str) -> None:
        raise NotImplementedError

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        raise NotImplementedError

    def setgroups(self, gids: list[int]) -> None:
        raise NotImplementedError

    def setresgid(self, gid: int) -> None:
        raise NotImplementedError

    def setresuid(self, uid: int) -> None:
        raise NotImplementedError

    def umask(self, mask: int) -> None:
        raise NotImplementedError

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        raise NotImplementedError

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        raise NotImplementedError

    # scheduling, I/O priority, CPU affinity, personality, NUMA memory policy (pid 0: the caller)
    def sched_setattr(
        self,
        pid: int,
        policy: int,
        flags: int,
        nice: int,
        priority: int,
        runtime: int,
        deadline: int,
        period: int,
    ) -> None:
        raise NotImplementedError

    def ioprio_set(self, which: int, who: int, ioprio: int) -> None:
        raise NotImplementedError

    def sched_setaffinity(self, pid: int, cpus) -> None:
        raise NotImplementedError

    def sched_getaffinity(self, pid: int) -> set:
        raise NotImplementedError

    def personality(self, persona: int) -> int:
        """Returns the previous persona."""
        raise NotImplementedError

    def set_mempolicy(self, mode: int, nodes) -> None:
        """`mode` with its MPOL_F_* flags or'ed in; `nodes` the node numbers of the nodemask."""
        raise NotImplementedError

    # processes (create's parent: stage 1 is forked, then reaped once it has forked the init)
    def fork(self) -> int:
        raise NotImplementedError

    def fork_into(self, cgroup_dir: str) -> int:
        """fork() with the child made in cgroup v2 directory `cgroup_dir` (clone3 with
        CLONE_INTO_CGROUP, Linux 5.7): no move afterwards. Only from a process with one thread
        (the child carries on in Python without CPython's or glibc's after-fork steps, which a
        single thread does not need). OSError where the kernel (or a seccomp filter) refuses."""
        raise NotImplementedError

    def waitpid(self, pid: int) -> None:
        raise NotImplementedError

    def execve(self, path: str, args: list[str], env: dict[str, str]) -> None:
        raise NotImplementedError
