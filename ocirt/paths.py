"""os.path's functions that ocirt's commands use, on posix alone.

Importing os costs ~1.4 ms a command here (its environ mapping and the collections ABCs it
pulls in), more than any module of ocirt's: the modules a container's way goes through (create,
run, exec, the short commands, the children) take their paths from here and their system calls
from posix. Each function behaves as its os.path namesake for str paths (tests/unit/test_paths.py
compares them); environment variables come through `environ_get`.
"""

import posix
import sys

_S_IFMT, _S_IFDIR, _S_IFREG, _S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000
S_IFMT, S_IFIFO, S_IFDIR, S_IFREG, S_IFLNK = _S_IFMT, 0o010000, _S_IFDIR, _S_IFREG, _S_IFLNK
# what a file is (st_mode & S_IFMT), in an error's words
FILE_KINDS = {
    S_IFIFO: "a fifo",
    0o020000: "a character device",
    S_IFDIR: "a directory",
    0o060000: "a block device",
    S_IFREG: "a regular file",
    S_IFLNK: "a symbolic link",
    0o140000: "a socket",
}


def join(a: str, *p: str) -> str:
    path = a
    for b in p:
        if b.startswith("/"):
            path = b
        elif not path or path.endswith("/"):
            path += b
        else:
            path += "/" + b
    return path


def split(p: str) -> tuple[str, str]:
    i = p.rfind("/") + 1
    head, tail = p[:i], p[i:]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head, tail


def dirname(p: str) -> str:
    return split(p)[0]


def basename(p: str) -> str:
    return p[p.rfind("/") + 1 :]


def normpath(path: str) -> str:
    """Lexically: "." and empty parts dropped, ".." takes the part before it; POSIX keeps a
    leading "//" (but not three or more slashes) as it is."""
    if not path:
        return "."
    lead = 0
    if path.startswith("/"):
        lead = 2 if path.startswith("//") and not path.startswith("///") else 1
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and (parts and parts[-1] != ".." or lead and not parts):
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" * lead + "/".join(parts) or "."


def abspath(path: str) -> str:
    if not path.startswith("/"):
        path = join(posix.getcwd(), path)
    return normpath(path)


def realpath(path: str) -> str:
    """Symbolic links resolved where they exist; a missing part, and everything after a loop of
    links, is kept as written (os.path.realpath without strict)."""
    resolved, _ = _resolve("", path, {})
    return abspath(resolved)


def _resolve(done: str, rest: str, seen: dict) -> tuple[str, bool]:
    """`rest` resolved on top of the already resolved `done`; False after a loop of links."""
    if rest.startswith("/"):
        rest, done = rest[1:], "/"
    while rest:
        name, _, rest = rest.partition("/")
        if name in ("", "."):
            continue
        if name == "..":
            if not done:
                done = ".."
            else:
                done, last = split(done)
                if last == "..":
                    done = join(done, "..", "..")
            continue
        candidate = join(done, name)
        try:
            is_link = posix.lstat(candidate).st_mode & _S_IFMT == _S_IFLNK
        except OSError:
            is_link = False
        if not is_link:
            done = candidate
            continue
        if candidate in seen:
            known = seen[candidate]
            if known is None:  # a link being resolved leads back to itself: a loop
                return join(candidate, rest), False
            done = known
            continue
        seen[candidate] = None
        done, ok = _resolve(done, posix.readlink(candidate), seen)
        if not ok:
            return join(done, rest), False
        seen[candidate] = done
    return done, True


def _mode(path: str) -> int:
    try:
        return posix.stat(path).st_mode
    except (OSError, ValueError):
        return 0


def exists(path: str, follow: bool = True) -> bool:
    """Whether `path` is there; with follow=False, a symlink is, whatever it points to."""
    try:
        posix.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return False
    return True


def is_dir(path: str) -> bool:
    return _mode(path) & _S_IFMT == _S_IFDIR


def is_file(path: str) -> bool:
    return _mode(path) & _S_IFMT == _S_IFREG


def makedirs(path: str, mode: int = 0o777) -> None:
    """os.makedirs(path, mode, exist_ok=True): missing parents too; FileExistsError where
    `path` is there and is not a directory."""
    try:
        posix.mkdir(path, mode)
    except FileNotFoundError:
        parent = dirname(path.rstrip("/"))
        if not parent or parent == path:
            raise
        makedirs(parent)  # as os.makedirs: the mode is the last directory's only
        try:
            posix.mkdir(path, mode)
        except FileExistsError:
            if not is_dir(path):
                raise
    except FileExistsError:
        if not is_dir(path):
            raise


def fsdecode(b: bytes) -> str:
    return b.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def fsencode(name: str) -> bytes:
    """os.fsencode, without loading os."""
    return name.encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def environ_get(name: str, default: str = "") -> str:
    """os.environ.get: from os's environ where os is loaded (a program using ocirt's API may
    have changed it since the process began), else from the process's start (posix.environ)."""
    os = sys.modules.get("os")
    if os is not None:
        return os.environ.get(name, default)
    value = posix.environ.get(fsencode(name))
    return default if value is None else fsdecode(value)


def is_symlink(path: str) -> bool:
    """os.path.islink: False where it cannot be looked at."""
    try:
        return posix.lstat(path).st_mode & _S_IFMT == _S_IFLNK
    except OSError:
        return False
