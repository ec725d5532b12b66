"""The real syscall layer: libc through cffi (out-of-line ABI mode, see _build.py)."""

from __future__ import annotations

import errno
import posix  # not os: see ocirt/paths.py
from _signal import SIGCHLD

from .. import signals
from . import (
    AT_EMPTY_PATH,
    AT_RECURSIVE,
    CLONE_INTO_CGROUP,
    CLONE_NEWUSER,
    CLOSE_RANGE_CLOEXEC,
    MOVE_MOUNT_F_EMPTY_PATH,
    MOVE_MOUNT_T_EMPTY_PATH,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    Kernel,
)

# Syscalls libc does not wrap (or wraps only in newer glibc): numbers per architecture, for the
# 64-bit ABI of each (uname -m). Numbers from 424 on are the same everywhere but on alpha and mips.
_NEW = {
    "clone3": 435,
    "close_range": 436,
    "openat2": 437,
    "mount_setattr": 442,
    "open_tree": 428,
    "move_mount": 429,
}
_GENERIC = {
    "rt_sigaction": 134,
    "pivot_root": 41,
    "capset": 91,
    "keyctl": 219,
    "bpf": 280,
    "sched_setattr": 274,
    "ioprio_set": 30,
    "set_mempolicy": 237,
    "personality": 92,
    **_NEW,
}  # asm-generic
_POWERPC = {
    "rt_sigaction": 173,
    "pivot_root": 203,
    "capset": 184,
    "keyctl": 271,
    "bpf": 361,
    "sched_setattr": 355,
    "ioprio_set": 273,
    "set_mempolicy": 261,
    "personality": 136,
    **_NEW,
}
_SYSCALLS = {
    "x86_64": {
        "rt_sigaction": 13,
        "pivot_root": 155,
        "capset": 126,
        "keyctl": 250,
        "bpf": 321,
        "sched_setattr": 314,
        "ioprio_set": 251,
        "set_mempolicy": 238,
        "personality": 135,
        **_NEW,
    },
    "aarch64": _GENERIC,
    "riscv64": _GENERIC,
    "loongarch64": _GENERIC,
    "ppc64le": _POWERPC,
    "ppc64": _POWERPC,
    "s390x": {
        "rt_sigaction": 174,
        "pivot_root": 217,
        "capset": 185,
        "keyctl": 280,
        "bpf": 351,
        "sched_setattr": 345,
        "ioprio_set": 282,
        "set_mempolicy": 270,
        "personality": 136,
        **_NEW,
    },
}


def syscall_numbers(machine: str, pointer_size: int) -> dict:
    """The table for this process's ABI; {} where ocirt does not know it (a 32-bit process, or
    an architecture not listed): a call then fails with ENOSYS, never a wrong syscall."""
    return _SYSCALLS.get(machine, {}) if pointer_size == 8 else {}


def _load_ffi():
    try:
        from ._libc import ffi
    except ImportError:  # running from a source tree that was never built: parse the cdefs now
        from cffi import FFI

        from ._cdefs import CDEF

        ffi = FFI()
        ffi.cdef(CDEF)
    return ffi, ffi.dlopen(None)


class LinuxKernel(Kernel):
    def __init__(self) -> None:
        self.ffi, self.libc = _load_ffi()
        self._machine = posix.uname().machine
        self._nr = syscall_numbers(self._machine, self.ffi.sizeof("void *"))

    def _check(self, ret: int, what: str) -> int:
        if ret < 0:
            err = self.ffi.errno
            raise OSError(err, what)
        return ret

    def _str(self, s: str | None):
        return self.ffi.NULL if s is None else s.encode()

    def _number(self, name: str):
        try:
            return self.ffi.cast("long", self._nr[name])
        except KeyError:
            raise OSError(
                errno.ENOSYS,
                f"{name}: syscall number not known for this architecture "
                f"({self._machine}, {self.ffi.sizeof('void *') * 8}-bit)",
            ) from None

    def _syscall(self, name: str, *args) -> int:
        return self._check(self.libc.syscall(self._number(name), *args), name)

    # namespaces
    def unshare(self, flags: int) -> None:
        self._check(self.libc.unshare(flags), "unshare")

    def setns(self, fd: int, nstype: int) -> None:
        self._check(self.libc.setns(fd, nstype), "setns")

    # mounts
    def mount(self, source, target, fstype, flags, data) -> None:
        ret = self.libc.mount(self._str(source), target.encode(), self._str(fstype), flags, self._str(data))
        self._check(ret, f"mount {source or fstype} to {target}")

    def umount(self, target: str, flags: int = 0) -> None:
        self._check(self.libc.umount2(target.encode(), flags), f"umount {target}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        c = self.ffi.new
        self._syscall("pivot_root", c("char[]", new_root.encode()), c("char[]", put_old.encode()))

    def mount_setattr(self, path, attr_set, attr_clr, propagation=0, recursive=True) -> None:
        attr = self.ffi.new("struct mount_attr *")
        attr.attr_set, attr.attr_clr, attr.propagation = attr_set, attr_clr, propagation
        flags = AT_RECURSIVE if recursive else 0
        self._syscall(
            "mount_setattr",
            self.ffi.cast("int", -100),
            self.ffi.new("char[]", path.encode()),
            self.ffi.cast("unsigned int", flags),
            attr,
            self.ffi.cast("size_t", self.ffi.sizeof("struct mount_attr")),
        )

    def open_tree(self, path, flags) -> int:
        ffi = self.ffi
        ret = self.libc.syscall(
            self._number("open_tree"),
            ffi.cast("int", -100),
            ffi.new("char[]", path.encode()),
            ffi.cast("unsigned int", flags),
        )
        return self._check(ret, f"open_tree {path}")

    def mount_setattr_fd(
        self, fd, attr_set, attr_clr, propagation=0, recursive=False, userns_fd=None
    ) -> None:
        ffi = self.ffi
        attr = ffi.new("struct mount_attr *")
        attr.attr_set, attr.attr_clr, attr.propagation = attr_set, attr_clr, propagation
        attr.userns_fd = userns_fd if userns_fd is not None else 0
        flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
        self._syscall(
            "mount_setattr",
            ffi.cast("int", fd),
            ffi.new("char[]", b""),
            ffi.cast("unsigned int", flags),
            attr,
            ffi.cast("size_t", ffi.sizeof("struct mount_attr")),
        )

    def copy_tree(self, src_fd, dst_fd) -> None:
        from ..copyup import copy_tree

        copy_tree(src_fd, dst_fd)

    def move_mount(self, from_fd, to_fd) -> None:
        ffi = self.ffi
        empty = ffi.new("char[]", b"")
        self._syscall(
            "move_mount",
            ffi.cast("int", from_fd),
            empty,
            ffi.cast("int", to_fd),
            empty,
            ffi.cast("unsigned int", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
        )

    def new_userns(self, uid_map, gid_map) -> int:
        ready_r, ready_w = posix.pipe2(posix.O_CLOEXEC)
        hold_r, hold_w = posix.pipe2(posix.O_CLOEXEC)
        try:
            pid = posix.fork()
        except BaseException:
            for fd in (ready_r, ready_w, hold_r, hold_w):
                posix.close(fd)
            raise
        if pid == 0:  # the holder: unshare, say so, wait to be killed (or for the parent to go)
            code = 1
            try:
                posix.close(ready_r)
                posix.close(hold_w)
                self.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
                self.unshare(CLONE_NEWUSER)
                posix.write(ready_w, b"1")
                posix.read(hold_r, 1)
                code = 0
            except BaseException:  # noqa: BLE001
                pass
            finally:
                posix._exit(code)
        posix.close(ready_w)
        posix.close(hold_r)
        try:
            if posix.read(ready_r, 1) != b"1":
                raise OSError(errno.EPERM, "unshare a user namespace for an idmapped mount")
            for name, data in (("uid_map", uid_map), ("setgroups", "deny"), ("gid_map", gid_map)):
                try:
                    self.write_file(f"/proc/{pid}/{name}", data)
                except OSError as e:
                    raise OSError(e.errno, f"write {name} of an idmapped mount's user namespace") from None
            return posix.open(f"/proc/{pid}/ns/user", posix.O_RDONLY | posix.O_CLOEXEC)
        finally:
            posix.close(ready_r)
            posix.close(hold_w)
            try:
                posix.kill(pid, 9)
            except OSError:
                pass
            posix.waitpid(pid, 0)

    def chroot(self, path: str) -> None:
        posix.chroot(path)

    def chdir(self, path: str) -> None:
        posix.chdir(path)

    def fchdir(self, fd: int) -> None:
        posix.fchdir(fd)

    # files
    def open(self, path, flags, mode=0o777, dir_fd=None) -> int:
        return posix.open(path, flags, mode, dir_fd=dir_fd)

    def open_in_root(self, root_fd: int, path: str, flags: int, mode: int = 0) -> int:
        how = self.ffi.new("struct open_how *")
        how.flags = flags | posix.O_CLOEXEC
        how.mode = mode
        how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
        name = self.ffi.new("char[]", (path.lstrip("/") or ".").encode())
        for _ in range(64):
            ret = self.libc.syscall(
                self._number("openat2"),
                self.ffi.cast("int", root_fd),
                name,
                how,
                self.ffi.cast("size_t", self.ffi.sizeof("struct open_how")),
            )
            # openat2(2): EAGAIN when a rename or a mount anywhere on the host raced a ".."
            # being resolved in the root; the lookup is to be retried
            if ret >= 0 or self.ffi.errno != errno.EAGAIN:
                break
        return self._check(ret, f"open {path}")

    def close(self, fd: int) -> None:
        posix.close(fd)

    def mkdir(self, path, mode=0o755, dir_fd=None) -> None:
        posix.mkdir(path, mode, dir_fd=dir_fd)

    def mknod(self, path, mode, device, dir_fd=None) -> None:
        posix.mknod(path, mode, device, dir_fd=dir_fd)

    def symlink(self, target, path, dir_fd=None) -> None:
        posix.symlink(target, path, dir_fd=dir_fd)

    def readlink(self, path) -> str:
        return posix.readlink(path)

    def stat_mode(self, path) -> int:
        return posix.stat(path).st_mode

    def chmod(self, path, mode) -> None:
        posix.chmod(path, mode)

    def chown(self, path, uid, gid) -> None:
        posix.chown(path, uid, gid)

    def move_self(self, tasks_fd) -> None:
        posix.write(tasks_fd, b"0")

    def write_file(self, path, data) -> None:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, data.encode() if isinstance(data, str) else data)
        finally:
            posix.close(fd)

    def mkfifo(self, path, mode) -> None:
        posix.mkfifo(path, mode)

    def close_fds_from(self, first: int) -> None:
        try:
            self._syscall(
                "close_range",
                self.ffi.cast("unsigned int", first),
                self.ffi.cast("unsigned int", 0xFFFFFFFF),
                self.ffi.cast("unsigned int", CLOSE_RANGE_CLOEXEC),
            )
        except OSError:  # kernels before 5.11
            for name in posix.listdir("/proc/self/fd"):
                fd = int(name)
                if fd >= first:
                    try:
                        posix.set_inheritable(fd, False)
                    except OSError:
                        pass

    def bpf(self, cmd: int, attr: bytearray, pointers: dict) -> int:
        import struct  # cgroup v2 device filters only

        ffi = self.ffi
        keep = [ffi.from_buffer(buf) for buf in pointers.values()]  # alive during the call
        for off, cbuf in zip(pointers, keep):
            struct.pack_into("=Q", attr, off, int(ffi.cast("uintptr_t", cbuf)))
        # The kernel may write back fields past the ones we pass (BPF_PROG_QUERY's revision
        # on 6.6+): give it a buffer as big as any union bpf_attr.
        cattr = ffi.new("char[]", max(len(attr), 256))
        ffi.memmove(cattr, bytes(attr), len(attr))

        def call():
            return self._syscall("bpf", ffi.cast("int", cmd), cattr, ffi.cast("unsigned int", len(attr)))

        try:
            try:
                return call()
            except OSError as e:
                # Kernels before 5.11 charge programs to RLIMIT_MEMLOCK (EPERM when over it):
                # raise it for the load only (not for the container, which inherits our limits).
                if cmd != 5 or e.errno != errno.EPERM:  # 5: BPF_PROG_LOAD
                    raise
                import resource

                old = resource.getrlimit(resource.RLIMIT_MEMLOCK)
                if old[0] == resource.RLIM_INFINITY:
                    raise
                try:
                    resource.setrlimit(
                        resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                    )
                except (OSError, ValueError):
                    raise e from None
                try:
                    return call()
                finally:
                    resource.setrlimit(resource.RLIMIT_MEMLOCK, old)
        finally:
            attr[:] = ffi.buffer(cattr, len(attr))[:]

    def join_session_keyring(self, name: str) -> None:
        KEYCTL_JOIN_SESSION_KEYRING = 1
        self._syscall(
            "keyctl", self.ffi.cast("int", KEYCTL_JOIN_SESSION_KEYRING), self.ffi.new("char[]", name.encode())
        )

    # identity and process attributes
    def sethostname(self, name: str) -> None:
        b = name.encode()
        self._check(self.libc.sethostname(b, len(b)), "sethostname")

    def setdomainname(self, name: str) -> None:
        b = name.encode()
        self._check(self.libc.setdomainname(b, len(b)), "setdomainname")

    def prctl(self, option, arg2=0, arg3=0, arg4=0, arg5=0) -> int:
        return self._check(self.libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl {option}")

    def setgroups(self, gids) -> None:
        posix.setgroups(gids)

    def setresgid(self, gid) -> None:
        posix.setresgid(gid, gid, gid)

    def setresuid(self, uid) -> None:
        posix.setresuid(uid, uid, uid)

    def umask(self, mask) -> None:
        posix.umask(mask)

    def setrlimit(self, resource_id, soft, hard) -> None:
        import resource

        resource.prlimit(0, resource_id, (soft, hard))

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        hdr = self.ffi.new("struct cap_header *")
        hdr.version = 0x20080522  # _LINUX_CAPABILITY_VERSION_3
        data = self.ffi.new("struct cap_data[2]")
        for i, shift in enumerate((0, 32)):
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        self._syscall("capset", hdr, data)

    def sched_setattr(self, pid, policy, flags, nice, priority, runtime, deadline, period) -> None:
        attr = self.ffi.new("struct sched_attr *")
        attr.size = self.ffi.sizeof("struct sched_attr")  # SCHED_ATTR_SIZE_VER1: util clamps too
        attr.sched_policy, attr.sched_flags = policy, flags
        attr.sched_nice, attr.sched_priority = nice, priority
        attr.sched_runtime, attr.sched_deadline, attr.sched_period = runtime, deadline, period
        self._syscall("sched_setattr", self.ffi.cast("int", pid), attr, self.ffi.cast("unsigned int", 0))

    def ioprio_set(self, which, who, ioprio) -> None:
        self._syscall(
            "ioprio_set", self.ffi.cast("int", which), self.ffi.cast("int", who), self.ffi.cast("int", ioprio)
        )

    def sched_setaffinity(self, pid, cpus) -> None:
        posix.sched_setaffinity(pid, cpus)

    def sched_getaffinity(self, pid) -> set:
        return posix.sched_getaffinity(pid)

    def personality(self, persona) -> int:
        return self._syscall("personality", self.ffi.cast("unsigned long", persona))

    def set_mempolicy(self, mode, nodes) -> None:
        if nodes:
            words = max(nodes) // 64 + 1
            mask = self.ffi.new("unsigned long[]", words)
            for n in nodes:
                mask[n // 64] |= 1 << (n % 64)
            # the kernel reads maxnode - 1 bits (a historical off-by-one every libnuma passes)
            maxnode = words * 64 + 1
        else:
            mask, maxnode = self.ffi.NULL, 0
        self._syscall(
            "set_mempolicy", self.ffi.cast("int", mode), mask, self.ffi.cast("unsigned long", maxnode)
        )

    def fork(self) -> int:
        return posix.fork()

    def fork_into(self, cgroup_dir: str) -> int:
        fd = posix.open(cgroup_dir, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            # struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2): flags, pidfd, child_tid,
            # parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
            # no stack: the child goes on on a copy of this one, as after fork()
            args = self.ffi.new("uint64_t[11]")
            args[0], args[4], args[10] = CLONE_INTO_CGROUP, SIGCHLD, fd
            return self._syscall("clone3", args, self.ffi.cast("size_t", 88))
        finally:
            posix.close(fd)

    def waitpid(self, pid) -> None:
        posix.waitpid(pid, 0)

    def execve(self, path, args, env) -> None:
        signals.execve(path, args, env)

    def default_if_ignored(self, sigs) -> None:
        """Each of `sigs` that is ignored set to its default action, by the system call itself:
        for the signals glibc keeps for its own use (signals.GLIBC_INTERNAL), which its
        sigaction refuses. The kernel's struct sigaction begins with the handler on every
        architecture in the table (then flags, a restorer where there is one, the mask of 64
        signals): 32 zeroed bytes are SIG_DFL, no flags, an empty mask."""
        nr, size, none = self._number("rt_sigaction"), self.ffi.cast("size_t", 8), self.ffi.NULL
        old = self.ffi.new("uint64_t[4]")
        dfl = self.ffi.new("uint64_t[4]")
        for sig in sigs:
            n = self.ffi.cast("int", sig)
            if self.libc.syscall(nr, n, none, old, size) == 0 and old[0] == 1:  # SIG_IGN
                self._check(self.libc.syscall(nr, n, dfl, none, size), "rt_sigaction")
