"""The few file operations cgroup management needs, in one place.

Every write to cgroupfs is one write(2) of the whole value on an fd opened without O_CREAT
(cgroup files can't be created; a missing one must fail with ENOENT, not create a regular
file). Errors stay OSError here; the writers turn them into ConfigError/OcirtError with
context. `CgroupFS` is the seam for a recording fake later; the default instance is
stateless.
"""

import errno
import posix  # not os: `state` and `start` read a freezer through it (see bin/ocirt, "posix")
import time

from ..errors import errno_text
from ..paths import exists, is_dir
from ..state import read_text


class CgroupFS:
    def read(self, path: str) -> str:
        return read_text(path)

    def write(self, path: str, value: str) -> None:
        data = value.encode("utf-8", "surrogateescape")
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, data)
        finally:
            posix.close(fd)

    def exists(self, path: str) -> bool:
        return exists(path)

    def isdir(self, path: str) -> bool:
        return is_dir(path)

    def mkdir(self, path: str) -> bool:
        """True if it made the directory, False if it was already there."""
        try:
            posix.mkdir(path, 0o755)
            return True
        except FileExistsError:
            return False

    def rmdir(self, path: str) -> None:
        posix.rmdir(path)

    def subdirs(self, path: str) -> list:
        try:
            with posix.scandir(path) as it:
                return [e.path for e in it if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def kill(self, pid: int, sig: int) -> None:
        posix.kill(pid, sig)


DEFAULT_FS = CgroupFS()


strerror = errno_text  # (the cgroup modules' name for it)


def read_int(fs: CgroupFS, path: str) -> int | None:
    """An integer file; 'max' -> None. None also when missing or unparsable."""
    try:
        s = fs.read(path).strip()
    except OSError:
        return None
    if s == "max":
        return None
    try:
        return int(s)
    except ValueError:
        return None


def read_keyed(fs: CgroupFS, path: str) -> dict:
    """'key value' lines -> {key: int}; unparsable values are skipped. {} if missing."""
    out: dict = {}
    try:
        text = fs.read(path)
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def read_pids(fs: CgroupFS, path: str) -> list:
    try:
        text = fs.read(path)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENODEV):
            return []
        raise
    return [int(x) for x in text.split()]
