"""`tmpcopyup`: a tmpfs mounted over a directory starts with that directory's contents.

Not in the OCI spec, but runc has it and podman asks for it (`podman run --tmpfs DIR` adds
the option), so engines expect it. The directory being covered is opened before the tmpfs goes
on top; that fd still reaches the covered directory afterwards, and the tree is copied from it
into the new mount, keeping types, modes, owners and times. Every name is resolved relative to
a directory fd with O_NOFOLLOW, so nothing in the rootfs can redirect the copy elsewhere.
"""

from __future__ import annotations

import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_tree(src_dir: int, dst_dir: int) -> None:
    """Copy the entries of the directory open at src_dir into the one open at dst_dir."""
    for entry in os.scandir(src_dir):
        _copy_entry(src_dir, dst_dir, entry.name)
    st = os.fstat(src_dir)
    _copy_attrs(dst_dir, None, st)


def _copy_entry(src_dir: int, dst_dir: int, name: str) -> None:
    st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(name, 0o700, dir_fd=dst_dir)
        s = os.open(name, _DIR_FLAGS, dir_fd=src_dir)
        try:
            d = os.open(name, _DIR_FLAGS, dir_fd=dst_dir)
            try:
                copy_tree(s, d)
            finally:
                os.close(d)
        finally:
            os.close(s)
        return
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
        _copy_attrs(dst_dir, name, st)
        return
    if stat.S_ISREG(mode):
        s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
        try:
            d = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dst_dir,
            )
            try:
                _copy_data(s, d, st.st_size)
                _copy_attrs(d, None, st)
            finally:
                os.close(d)
        finally:
            os.close(s)
        return
    # fifos, sockets, device nodes: made again, not read
    os.mknod(name, mode, st.st_rdev, dir_fd=dst_dir)
    _copy_attrs(dst_dir, name, st)


def _copy_data(src: int, dst: int, size: int) -> None:
    offset = 0
    while offset < size:
        try:
            n = os.copy_file_range(src, dst, size - offset)
        except OSError:
            n = -1
        if n <= 0:  # not supported across these filesystems (or the file shrank)
            break
        offset += n
    while True:
        chunk = os.read(src, 1 << 20)
        if not chunk:
            return
        os.write(dst, chunk)


def _copy_attrs(at: int, name: str | None, st: os.stat_result) -> None:
    """Owner, mode and times; of `name` in directory `at` (not following a symlink), or of the
    open fd `at` itself when name is None."""
    if name is None:
        os.chown(at, st.st_uid, st.st_gid)
        os.chmod(at, stat.S_IMODE(st.st_mode))
        os.utime(at, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    os.chown(name, st.st_uid, st.st_gid, dir_fd=at, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=at)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=at, follow_symlinks=False)
