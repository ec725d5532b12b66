"""Container status and the state directory.

The status is derived from the kernel, not trusted from a file (crun's way): the init pid must be
alive with the start time recorded at create, exec.fifo tells created from running (`start`
unlinks it once the init wrote EXECUTING; one killed before leaves it marked, and the init's fds
tell then: STARTED_MODE), and a frozen cgroup means paused. state.json only records what
cannot be derived.
"""

import errno
import posix  # not os: see bin/ocirt ("posix"); this module is on every command's path

from . import jsonio
from .errors import OcirtError
from .gonum import decimal
from .paths import is_dir, is_symlink, join, makedirs  # os.path's, on posix
from .record import asdict, field, fields, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# runc's id rule, ^[\w+-.]+$, without importing re (~4 ms) on every command
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(container_id: str) -> None:
    """A container id as runc takes it (it names the state directory)."""
    if not container_id:
        raise OcirtError("container id cannot be empty")  # (runc's words, both)
    if container_id in (".", "..") or not _ID_CHARS.issuperset(container_id):
        raise OcirtError(f"invalid container ID format: {container_id}")


def read_to_end(fd: int) -> bytes:
    """Everything `fd` gives until its end (a file, a pipe whose writers have all closed)."""
    chunks: list[bytes] = []
    while True:
        b = posix.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd` (a write may take less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view) :]


def read_text(path: str) -> str:
    """A whole (small) file as text, undecodable bytes kept (surrogateescape); OSError as is."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        return read_to_end(fd).decode("utf-8", "surrogateescape")
    finally:
        posix.close(fd)


OCI_VERSION = "1.3.0"


class Status:
    """The statuses of runtime.md, and which operations each allows.

    An enum without the enum module (its import is ~3 ms of every command): the five members are
    the only instances, compared with `is`.
    """

    __slots__ = ("value",)
    CREATING: "Status"
    CREATED: "Status"
    RUNNING: "Status"
    PAUSED: "Status"
    STOPPED: "Status"

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return f"Status.{self.value.upper()}"

    def check(self, operation: str, force: bool = False, container_id: str = "") -> None:
        """Raise the error runc gives when `operation` is not legal in this status."""
        allowed = _LEGAL[operation]
        if self in allowed or (force and operation == "delete"):
            return
        message = _REFUSALS.get((operation, self), f"cannot {operation} a {self.value} container")
        raise OcirtError(message.format(id=container_id))


for _name in ("creating", "created", "running", "paused", "stopped"):
    setattr(Status, _name.upper(), Status(_name))

_LEGAL: dict[str, frozenset] = {
    "start": frozenset({Status.CREATED}),
    "kill": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    "delete": frozenset({Status.STOPPED}),
    "pause": frozenset({Status.CREATED, Status.RUNNING}),
    "resume": frozenset({Status.PAUSED}),
    "exec": frozenset({Status.CREATED, Status.RUNNING}),
    "update": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
}

# runc's wording where engines depend on it
_REFUSALS = {
    ("start", Status.RUNNING): "cannot start an already running container",
    ("start", Status.STOPPED): "cannot start a container that has stopped",
    ("start", Status.PAUSED): "cannot start a container in the paused state",
    ("kill", Status.STOPPED): "container not running",
    ("exec", Status.STOPPED): "cannot exec in a stopped container",
    ("delete", Status.RUNNING): "cannot delete container {id} that is not stopped: running",
    ("delete", Status.PAUSED): "cannot delete container {id} that is not stopped: paused",
    ("delete", Status.CREATED): "cannot delete container {id} that is not stopped: created",
    ("pause", Status.PAUSED): "container not running",
    ("update", Status.STOPPED): "container not running",
    ("pause", Status.STOPPED): "container not running",
    ("resume", Status.RUNNING): "container not paused",
    ("resume", Status.CREATED): "container not paused",
    ("resume", Status.STOPPED): "container not paused",
    # (delete waits for the lock a running create holds: this one's create ended before its end)
    ("delete", Status.CREATING): "cannot delete a creating container: its create did not finish"
    " (delete --force removes it)",
}


@record
class ContainerState:
    """What state.json records."""

    id: str
    bundle: str
    pid: int = 0
    pid_start: int = 0  # field 22 of /proc/PID/stat when the init was made
    rootfs: str = ""
    created: str = ""  # RFC 3339
    owner: str = ""
    annotations: dict = field(default_factory=dict)
    cgroup: dict = field(default_factory=dict)
    hooks: dict = field(default_factory=dict)  # poststart/poststop, run after create returned
    systemd_cgroup: bool = False
    seccomp: dict | None = None  # linux.seccomp at create: `exec` applies the same filter
    memory_policy: dict | None = None  # linux.memoryPolicy at create: `exec` sets it too

    def oci(self, status: Status) -> dict:
        """The state of runtime.md, as `state` prints it."""
        out = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status.value,
            "pid": self.pid if status in (Status.CREATED, Status.RUNNING, Status.PAUSED) else 0,
            "bundle": self.bundle,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out


def _stat_fields(pid: int) -> list:
    """/proc/<pid>/stat's fields after the command's name (its state first); OSError as read."""
    fd = posix.open(f"/proc/{pid}/stat", posix.O_RDONLY | posix.O_CLOEXEC)
    try:  # posix, not open(): no buffer objects, no isatty probe (start, state, kill, delete)
        data = posix.read(fd, 4096)  # one line, well under a page, given whole by one read
    finally:
        posix.close(fd)
    return data[data.rindex(b")") + 2 :].split()


def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of pid, or None if no such process. An error that
    does not say the process is gone (no fd left, say) is raised: a running container must
    never be taken for a stopped one (kill, exec and delete act on that)."""
    try:
        fields = _stat_fields(pid)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ESRCH):  # (ESRCH: it ended between open and read)
            return None
        raise OcirtError(f"cannot read /proc/{pid}/stat", e.errno) from None
    if fields[0] in (b"Z", b"X"):  # a zombie has exited already
        return None
    return decimal(fields[19])


def proc_stopped(pid: int) -> bool:
    """Whether pid is stopped by a signal or a tracer (T, t); False when it cannot be told."""
    try:
        return _stat_fields(pid)[0] in (b"T", b"t")
    except (OSError, ValueError, IndexError):
        return False


# -- paused: whether the container's cgroup is frozen (the status's last part) -------------------


def cgroup_frozen(read: "Callable[[str], str]", d: str | None, v2: bool) -> bool:
    """True if the cgroup itself was frozen (not merely an ancestor); False when unreadable.
    `read`: a CgroupFS's read (the managers'), or read_text (saved_frozen)."""
    if not d:
        return False
    try:
        if v2:
            return read(f"{d}/cgroup.freeze").strip() == "1"
        try:
            return read(f"{d}/freezer.self_freezing").strip() == "1"
        except FileNotFoundError:
            return read(f"{d}/freezer.state").strip() == "FROZEN"
    except OSError:
        return False


def freezer_dir(paths: dict, unified: str | None) -> tuple[str | None, bool]:
    """Where a cgroup freezes: the v1 freezer hierarchy where there is one, else the v2 directory
    (cgroup.freeze; also a hybrid host's without a v1 freezer). (directory, is v2)."""
    if "freezer" in paths:
        return paths["freezer"], False
    return unified, True


def saved_frozen(saved: dict | None) -> bool:
    """cgroup_frozen() of the cgroup that `saved` (a manager's to_dict(), in state.json)
    describes, without making the manager (the cgroups package stays off the path of state,
    start, kill and delete): the v1 freezer where there is one, else the v2 directory, as
    every manager picks it."""
    if not saved or not saved.get("kind"):
        return False  # no cgroup: nothing to freeze
    return cgroup_frozen(read_text, *freezer_dir(saved.get("paths") or {}, saved.get("unified")))


# What the init writes to exec.fifo once it is through (after the "0" that says `start` came):
# EXECUTING right before its execve, or instead a failure's message (stages._init; read by
# container.Container.start). Never part of a message.
EXECUTING = b"\0"

# exec.fifo's mode once a start began (create makes it 0o622): the sticky bit, which means nothing
# on a fifo, set before start's open lets the init go. The fifo stays (status created) until the
# init wrote EXECUTING; a start killed meanwhile leaves it, and the status then asks the init
# whether it still holds the fifo (StateDir._executed). In the mode, not in a file of its own:
# status reads it with the stat that tells created from running anyway.
STARTED_MODE = 0o1622
_S_ISVTX = 0o1000


class StateDir:
    """<root>/<id>/: state.json, exec.fifo; locked with flock on the directory itself."""

    def __init__(self, root: str, container_id: str):
        self.root = root
        self.id = container_id
        self.path = join(root, container_id)
        self.state_file = self.path + "/state.json"
        self.fifo = self.path + "/exec.fifo"
        self.fifo_started = False  # status() saw exec.fifo marked (STARTED_MODE): a start began
        self._lock_fd: int | None = None

    # locking
    def make_and_lock(self) -> None:
        """Create the directory (exactly one of two concurrent creates succeeds) and lock it."""
        try:
            makedirs(self.root, 0o711)
        except OSError as e:  # (FileExistsError: --root is there and is not a directory)
            code = 20 if isinstance(e, FileExistsError) else e.errno  # ENOTDIR, as runc's mkdir
            raise OcirtError(f"cannot create the state directory {self.root} (--root)", errno=code) from None
        try:
            posix.mkdir(self.path, 0o711)
        except FileExistsError:
            raise OcirtError("container with given ID already exists") from None
        except OSError as e:
            raise OcirtError(
                f"cannot create the state directory {self.path} (--root)", errno=e.errno
            ) from None
        self._lock_fd = posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        import fcntl  # a dlopen: not for `state`, which takes no lock

        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def lock(self) -> None:
        """Lock an existing container; waits while another operation holds it."""
        try:
            fd = posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except FileNotFoundError:
            raise OcirtError(f"container does not exist: {self.id}") from None
        except OSError as e:  # an id too long for a file name, a file in its place
            raise OcirtError(f"container {self.id}: open {self.path}", e.errno) from None
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # deleted while we waited?
            held, named = posix.fstat(fd), posix.stat(self.path)
            if held.st_nlink == 0 or (held.st_dev, held.st_ino) != (named.st_dev, named.st_ino):
                raise FileNotFoundError
        except FileNotFoundError:
            posix.close(fd)
            raise OcirtError(f"container does not exist: {self.id}") from None
        self._lock_fd = fd

    @property
    def lock_fd(self) -> int | None:
        return self._lock_fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            posix.close(self._lock_fd)
            self._lock_fd = None

    # contents
    def load(self) -> ContainerState:
        """state.json as a ContainerState. Members it does not know are ignored; a file that is
        not JSON, or a known member of the wrong type, raises DamagedState (an OcirtError), which
        carries what could still be read (`salvage`)."""
        data = self.read()
        damage = state_damage(data, self.id)
        if damage:
            raise DamagedState(self.id, damage, salvage_fields(data))
        return ContainerState(**{k: data[k] for k in fields(ContainerState) if k in data})

    def read(self):
        """state.json parsed, whatever it holds; DamagedState when it is not JSON."""
        try:
            # without waiting: a state.json made a FIFO reads as empty (damaged), not for ever
            fd = posix.open(self.state_file, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK)
            try:
                text = jsonio.read_fd(fd)  # (bounded: state.json a link to /dev/zero, say)
            finally:
                posix.close(fd)
        except FileNotFoundError:
            raise OcirtError(f"container does not exist: {self.id}") from None
        except IsADirectoryError:
            raise DamagedState(self.id, "state.json is not a file", {}) from None
        except OSError as e:
            raise OcirtError(f"container {self.id}: cannot read state.json", e.errno) from None
        except ValueError as e:
            raise DamagedState(self.id, f"not JSON: {e}", {}) from None
        try:
            return jsonio.loads(text)
        except ValueError as e:
            raise DamagedState(self.id, f"not JSON: {e}", salvage_text(text, self.id)) from None

    def save(self, state: ContainerState, aside: bool = False) -> None:
        """state.json written whole: a temporary file renamed into place. With `aside` (create's
        last save), the old file is renamed aside first and unlinked after, so that the new one
        is never renamed over another: ext4 allocates the blocks of a file renamed over another
        at once (auto_da_alloc), and `delete` then pays ~0.3 ms to unlink it, against ~0.05 ms.
        In between (a few microseconds) there is no state.json: a reader finds no container, as
        before create's first save; a create killed just then leaves the new record in
        state.json.tmp, where `delete --force` looks (remove_damaged)."""
        tmp = self.state_file + ".tmp"
        data = jsonio.dumps(asdict(state)).encode()  # posix, not open(): no text layer
        try:
            fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, 0o666)
            try:
                write_all(fd, data)
            finally:
                posix.close(fd)
        except OSError as e:  # a full or read-only --root, RLIMIT_FSIZE
            try:
                posix.unlink(tmp)  # (what it holds is not a record)
            except OSError:
                pass
            raise OcirtError(f"write {tmp}", e.errno) from None
        old = self.state_file + ".old"
        if aside:
            try:
                posix.rename(self.state_file, old)
            except FileNotFoundError:
                aside = False
        posix.rename(tmp, self.state_file)
        if aside:
            try:
                posix.unlink(old)
            except OSError:
                pass  # remove() takes it with the directory

    def salvage_aside(self) -> dict:
        """No state.json: what a create killed while its last save had the old one aside still
        tells (salvage_fields), from the new record (state.json.tmp), else the old one; {} when
        neither can be read."""
        for path in (self.state_file + ".tmp", self.state_file + ".old"):
            try:
                found = salvage_fields(jsonio.load_path(path))
            except (OSError, ValueError):
                continue
            if found:
                return found
        return {}

    def status(self, state: ContainerState, frozen=None) -> Status:
        if not state.pid:
            return Status.CREATING
        if proc_start_time(state.pid) != state.pid_start:
            return Status.STOPPED
        if frozen is not None and frozen():  # before the fifo: a created container can be paused
            return Status.PAUSED
        try:
            fifo = posix.lstat(self.fifo)  # (a link in its place is not followed: not a mark)
        except OSError:
            return Status.RUNNING
        if fifo.st_mode & _S_ISVTX:  # a start began: created until the init executes the program
            self.fifo_started = True
            if self._executed(state.pid, fifo):
                return Status.RUNNING
        return Status.CREATED

    @staticmethod
    def _executed(pid: int, fifo) -> bool:
        """exec.fifo is marked started: whether the init is past its execve. Until then it holds
        the fifo, whatever became of the start (one killed during the startContainer hooks
        leaves the fifo behind): an O_PATH fd of it while it waits for a reader, its end (close-
        on-exec) after. Its fds, not the fifo, are asked: a reader's open would let a waiting
        init go, and take a byte a start waits for. An init we may not look at (non-dumpable,
        the caller not root) has not executed the program. Asked twice before it counts as
        executed: the init opens its end before it closes its O_PATH fd, but a listing taken
        before that open, read after that close, holds neither (a `state` during a start said
        "running" while the startContainer hooks ran)."""
        for _ in range(2):
            try:
                names = posix.listdir(f"/proc/{pid}/fd")
            except OSError:
                return False
            for name in names:
                try:
                    held = posix.stat(f"/proc/{pid}/fd/{name}")
                except OSError:
                    continue
                if held.st_ino == fifo.st_ino and held.st_dev == fifo.st_dev:
                    return False
        return True

    def remove(self) -> None:
        """The directory and what is in it. Where a symbolic link took its place, only the files
        a state dir holds are removed through it, then the link: never the rest of what it
        points at (a link to /tmp lost /tmp whatever could be removed)."""
        if is_symlink(self.path):
            for name in STATE_FILES:
                try:
                    posix.unlink(f"{self.path}/{name}")
                except OSError:
                    pass
            posix.unlink(self.path)
            return
        try:
            names = posix.listdir(self.path)
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            # no fd left to list it with (a create that failed for want of fds): the files a
            # state dir holds, by name (unlink and rmdir take no fd)
            names = list(STATE_FILES)
        for name in names:
            path = f"{self.path}/{name}"
            try:
                posix.unlink(path)
            except FileNotFoundError:
                pass
            except IsADirectoryError:  # notify/ (sdnotify.py), or a damaged state dir's
                if not _remove_flat_dir(path):  # whatever is in it goes
                    import shutil

                    shutil.rmtree(path, ignore_errors=True)
        try:
            posix.rmdir(self.path)
        except OSError as e:
            if e.errno == errno.ENOTDIR:  # a state dir made a symlink: its contents went above
                posix.unlink(self.path)
            elif e.errno != errno.ENOENT:
                raise


# what a state dir holds (StateDir.save, create's exec.fifo; sdnotify's notify/ aside)
STATE_FILES = ("state.json", "state.json.tmp", "state.json.old", "exec.fifo")


def _remove_flat_dir(path: str) -> bool:
    """A directory of files only (a NOTIFY_SOCKET container's notify/ and its socket) removed
    without shutil; False where that is not all there is."""
    try:
        for name in posix.listdir(path):
            posix.unlink(f"{path}/{name}")
        posix.rmdir(path)
    except OSError:
        return False
    return True


class DamagedState(OcirtError):
    """state.json cannot be used: the command fails for this container only; `delete --force`
    still removes what `salvage` (salvage_fields) tells of it."""

    def __init__(self, container_id: str, damage: str, salvage: dict):
        self.damage = damage
        self.salvage = salvage
        hint = (  # (delete --force goes by what it still tells: container._check_leftover)
            "delete --force removes it"
            if salvage.get("pid") or salvage.get("cgroup")
            else "it tells no pid and no cgroup: delete --force leaves it, as its init may run"
        )
        super().__init__(f"container {container_id}: damaged state.json: {damage} ({hint})")


def _is_int(v) -> bool:
    return type(v) is int


def _is_str(v) -> bool:
    return type(v) is str


def _str_list(v) -> bool:
    return type(v) is list and all(type(x) is str for x in v)


def _optional(check):
    return lambda v: v is None or check(v)


def _dict_of(check):
    return lambda v: type(v) is dict and all(type(k) is str and check(x) for k, x in v.items())


def _hook_list(v) -> bool:
    return type(v) is list and all(_hook(h) for h in v)


def _hook(h) -> bool:
    return (
        type(h) is dict
        and _is_str(h.get("path"))
        and all(_str_list(h[k]) for k in ("args", "env") if h.get(k) is not None)
        and _optional(_is_int)(h.get("timeout"))
    )


def _cgroup_dir(v) -> bool:
    """An absolute path without '.', '..' or empty components: a cgroup directory, as saved
    (destroy() removes the created ones: a damaged record must not name just any directory)."""
    return (
        type(v) is str
        and v.startswith("/")
        and "\x00" not in v
        and all(part not in ("", ".", "..") for part in v[1:].split("/"))
    )


def _cgroup(v) -> bool:
    """The shape Cgroup.to_dict (and SystemdCgroup's) saves; {} for no cgroup."""
    if type(v) is not dict:
        return False
    if not v:
        return True
    systemd = v.get("systemd")
    return (
        v.get("kind") in ("v1", "hybrid", "v2")  # the host's layout when it was made
        and _dict_of(_cgroup_dir)(v.get("paths", {}))
        and _optional(_cgroup_dir)(v.get("unified"))
        and _optional(_is_str)(v.get("cgroupsPath"))
        and _optional(lambda c: type(c) is list and all(_cgroup_dir(d) for d in c))(v.get("created"))
        and _optional(lambda d: type(d) is list and all(type(r) is dict for r in d))(v.get("devices"))
        and (
            not systemd
            or (
                type(systemd) is dict
                # a scope or slice: delete stops the unit (StopUnit), and a damaged record
                # must not name any unit of the host's (a service, say)
                and _is_str(systemd.get("unit"))
                and systemd["unit"].endswith((".scope", ".slice"))
                and _optional(_is_str)(systemd.get("slice"))
            )
        )
    )


_FIELD_CHECKS = {
    "id": (_is_str, "a string"),
    "bundle": (_is_str, "a string"),
    "pid": (lambda v: _is_int(v) and 0 <= v < 1 << 22, "a pid"),
    "pid_start": (lambda v: _is_int(v) and v >= 0, "a start time"),
    "rootfs": (_is_str, "a string"),
    "created": (_is_str, "a string"),
    "owner": (_is_str, "a string"),
    "annotations": (_dict_of(_is_str), "an object of strings"),
    "cgroup": (_cgroup, "a cgroup record"),
    "hooks": (_dict_of(_hook_list), "an object of hook lists"),
    "systemd_cgroup": (lambda v: type(v) is bool, "a boolean"),
    "seccomp": (_optional(lambda v: type(v) is dict), "an object or null"),
    "memory_policy": (_optional(lambda v: type(v) is dict), "an object or null"),
}


def state_damage(data, container_id: str) -> str:
    """What is wrong with a parsed state.json ("" when nothing): its members ContainerState
    knows must have their types; the others are ignored (a newer or older ocirt's)."""
    if type(data) is not dict:
        return "not an object"
    for name in ("id", "bundle"):
        if name not in data:
            return f"{name!r} is missing"
    for name, value in data.items():
        check = _FIELD_CHECKS.get(name)
        if check is not None and not check[0](value):
            return f"{name!r} is not {check[1]}"
    if data["id"] != container_id:
        return f"it records another id ({data['id'][:40]!r})"
    if data.get("pid") and "cgroup" not in data:
        return "'cgroup' is missing"  # every create records one ({}: none) before its init
    return ""


def salvage_fields(data) -> dict:
    """What a damaged state.json still tells, for `delete --force`: each of pid, pid_start and
    cgroup that has its type. A damaged cgroup record gives what it still says of where the
    cgroup is (_cgroup_where), else where the bundle's config.json puts it (_cgroup_of_config);
    either way with no `created`: the container's own directories go where they are empty, a
    parent stays (nothing says create made it), and only the container's processes (by its pid
    namespace, members.py) are killed."""
    if type(data) is not dict:
        return {}
    out = {
        name: data[name]
        for name in ("pid", "pid_start", "cgroup")
        if name in data and _FIELD_CHECKS[name][0](data[name])
    }
    if "cgroup" not in out and data.get("systemd_cgroup") is not True:
        where = _cgroup_where(data.get("cgroup")) or _cgroup_of_config(data)
        if where:
            out["cgroup"] = where
    return out


def salvage_text(raw: bytes, container_id: str) -> dict:
    """What a state.json that is no JSON any more (cut short, a byte changed) still says, for
    `delete --force`: its top-level pid, pid_start and bundle where each is there whole, as
    ocirt writes them (`, "pid": 25598,`; a string's own quotes are escaped, so nothing inside
    one looks so), given to salvage_fields: the init when pid and start time match, the cgroup
    where the bundle's config.json puts it. Without both pid and pid_start, or of another id,
    nothing."""
    import re  # (a damaged file only)

    def value(name: bytes, pattern: bytes):
        m = re.search(rb'[{,] ?"' + name + rb'": (' + pattern + rb")[,}]", raw)
        if m is None:
            return None
        try:
            return jsonio.loads(m[1])
        except ValueError:
            return None

    string = rb'"(?:[^"\\\x00-\x1f]|\\.)*"'
    if value(b"id", string) not in (None, container_id):
        return {}
    data = {"id": container_id, "bundle": value(b"bundle", string)}
    for name in ("pid", "pid_start"):
        data[name] = value(name.encode(), rb"\d{1,20}")
        if data[name] is None:  # the init's fate unknown: nothing (_check_leftover says so)
            return {}
    if re.search(rb'[{,] ?"systemd_cgroup": true[,}]', raw):
        data["systemd_cgroup"] = True
    return salvage_fields(data)


def _cgroup_where(v) -> dict:
    """The where of a damaged cgroupfs record (kind, paths, unified, cgroupsPath), when those
    have their types; {} otherwise."""
    if type(v) is not dict or v.get("systemd"):
        return {}
    where = {k: v[k] for k in ("kind", "paths", "unified", "cgroupsPath") if k in v}
    return where if where.get("kind") and _cgroup(where) else {}


def _cgroup_of_config(data: dict) -> dict:
    """The cgroupfs record of the cgroup the bundle's config.json names (linux.cgroupsPath, else
    the id), with nothing created; {} when it cannot be told."""
    bundle, container_id = data.get("bundle"), data.get("id")
    if type(bundle) is not str or type(container_id) is not str or not bundle.startswith("/"):
        return {}
    try:
        linux = jsonio.load_path(f"{bundle}/config.json").get("linux") or {}
        from .cgroups import detect
        from .cgroups.factory import fs_class

        layout = detect()
        cg = fs_class(layout.kind).for_container(layout, linux.get("cgroupsPath"), container_id)
        record = cg.to_dict()
    except (OSError, ValueError, AttributeError, TypeError, OcirtError):
        return {}
    record["created"] = []
    return record if _cgroup(record) else {}


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in posix.listdir(root) if is_dir(join(root, n)))
    except FileNotFoundError:
        return []
