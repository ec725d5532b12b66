"""systemd's two ways into a container, as runc's create/run/start give them: socket activation
(LISTEN_FDS: the fds systemd passed us go on to the container's process) and readiness
notification (NOTIFY_SOCKET: the container's READY= reaches the host's socket, with MAINPID).

Imported only when one of these variables is set: `start`, `state`, `kill` and `delete` load
nothing more without them.

The notify socket: create binds <root>/<id>/notify read-only on /run/notify in the container and
sets NOTIFY_SOCKET=/run/notify/notify.sock in its env; whoever starts the process (`run`, or
`start` with NOTIFY_SOCKET set) binds notify.sock there first, then passes the container's first
READY= on to the host's socket, followed by MAINPID."""

from __future__ import annotations

import posix  # not os: see ocirt/paths.py
import socket

from . import paths
from .errors import OcirtError, errno_text
from .gonum import go_atoi
from .state import StateDir, proc_start_time

NOTIFY_DIR = "notify"  # in the state dir
SOCKET_NAME = "notify.sock"
IN_CONTAINER = "/run/notify"
# runc's options: the container can send to the socket and do nothing else there
MOUNT_OPTIONS = ["bind", "nosuid", "noexec", "nodev", "ro"]
POLL = 0.1  # seconds between looks at the init while waiting for READY= (as runc)


def environ(name: bytes) -> str:
    """A variable of our environment ('' if unset), as the create path reads it (no os)."""
    return posix.environ.get(name, b"").decode("utf-8", "surrogateescape")


def create_options() -> dict:
    """The CreateOptions fields the two variables set (commands/create.options_from)."""
    return {"listen_fds": listen_fds(), "notify_socket": environ(b"NOTIFY_SOCKET") or None}


# ---- socket activation ------------------------------------------------------------------------


def listen_fds() -> int:
    """How many fds (from 3) systemd passed for this process: LISTEN_FDS, when LISTEN_PID is our
    pid. 0 otherwise: the variables were meant for another process (one that exec'd us keeps
    its pid), or do not parse."""
    if go_atoi(environ(b"LISTEN_PID")) != posix.getpid():
        return 0
    n = go_atoi(environ(b"LISTEN_FDS"))
    return n if n is not None and n > 0 else 0


def check_listen_fds(n: int) -> None:
    """Each fd systemd said it passed must be one we got (open, not close-on-exec): runc hands on
    whatever is at that number then, one of its own included. Stops at the first missing."""
    for fd in range(3, 3 + n):
        try:
            passed = posix.get_inheritable(fd)
        except OSError:
            passed = False
        if not passed:
            raise OcirtError(
                f"LISTEN_FDS={n}: fd {fd} is not open (socket activation passes fds 3 to {2 + n})"
            )


def process_env(listen: int, notify: bool) -> list[str]:
    """What the container's process gets in its env, after its own (a later entry wins)."""
    env = [f"NOTIFY_SOCKET={IN_CONTAINER}/{SOCKET_NAME}"] if notify else []
    if listen:
        env += [f"LISTEN_FDS={listen}", "LISTEN_PID=1"]  # the process is pid 1 of its namespace
    return env


# ---- the notify socket ------------------------------------------------------------------------


def notify_dir(state_dir: str) -> str:
    return paths.abspath(f"{state_dir}/{NOTIFY_DIR}")  # a bind source: not relative to the bundle


def mount(root: str, container_id: str) -> dict:
    """The config mount create adds for the container's end of the socket."""
    return {
        "destination": IN_CONTAINER,
        "source": notify_dir(f"{root}/{container_id}"),
        "options": MOUNT_OPTIONS,
    }


class NotifyStateDir(StateDir):
    """create's state dir, with the notify dir the container's mount binds (made before the
    init needs it, removed with the state dir)."""

    def make_and_lock(self) -> None:
        super().make_and_lock()
        try:
            posix.mkdir(f"{self.path}/{NOTIFY_DIR}", 0o755)
        except OSError as e:  # (create's undo starts after this returns)
            self.remove()
            self.unlock()
            raise OcirtError(f"mkdir {self.path}/{NOTIFY_DIR}: {errno_text(e)}") from None


def address(host: str) -> str:
    """A socket address as systemd writes it: '@name' is in the abstract namespace."""
    return "\0" + host[1:] if host.startswith("@") else host


class Notify:
    """Our end of both sockets: the host's (connected) and the container's (bound)."""

    def __init__(self, host: str):
        self.host = host
        self.to_host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.inside: socket.socket | None = None

    @classmethod
    def connect(cls, host: str) -> Notify:
        """Reach the host's socket first: one that is not there fails the command before the
        container starts (runc finds out only once it has started it). runc's words."""
        n = cls(host)
        try:
            n.to_host.connect(address(host))
        except OSError as e:
            n.close()
            raise OcirtError(f"dial unixgram {host}: connect: {errno_text(e)}") from None
        return n

    def bind(self, state_dir: str) -> None:
        """notify.sock, in the dir create made; anyone in the container may send to it."""
        path = f"{notify_dir(state_dir)}/{SOCKET_NAME}"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            try:
                posix.unlink(path)  # a former start's, which left it bound to nobody
            except FileNotFoundError:
                pass
            s.bind(path)
            posix.chmod(path, 0o777)  # the container's user may be any uid
        except OSError as e:
            s.close()
            raise OcirtError(f"listen unixgram {path}: bind: {errno_text(e)}") from None
        self.inside = s

    def close(self) -> None:
        for s in (self.to_host, self.inside):
            if s is not None:
                s.close()

    def ready_line(self, alive) -> bytes | None:
        """The container's READY= line, or None once `alive()` says the init is gone."""
        inside = self.inside
        if inside is None:  # (not bound: nothing can come)
            return None
        inside.settimeout(POLL)
        while True:
            try:
                got = inside.recv(4096)
            except TimeoutError:
                if not alive():
                    return None
                continue
            line = ready(got)
            if line is not None:
                return line

    def forward(self, line: bytes, mainpid: int) -> None:
        """READY= and MAINPID to the host, each its own datagram (as runc sends them)."""
        try:
            self.to_host.send(line + b"\n")
            self.to_host.send(b"MAINPID=%d\n" % mainpid)
        except OSError as e:
            raise OcirtError(f"write unixgram {self.host}: {errno_text(e)}") from None

    def wait_and_forward(self, pid: int, pid_start: int | None, mainpid: int) -> None:
        """`start` and `run -d`: return once the container said READY= (passed on) or its init
        is gone (nothing to pass on; the command still succeeds, as runc's)."""
        line = self.ready_line(lambda: proc_start_time(pid) == pid_start)
        if line is not None:
            self.forward(line, mainpid)

    def forward_in_background(self, mainpid: int) -> None:
        """Foreground `run`: the container's READY= is passed on while we wait for it to exit;
        the thread ends with it, or with us."""
        import threading

        def relay():
            try:
                line = self.ready_line(lambda: True)
                if line is not None:
                    self.forward(line, mainpid)
            except (OSError, OcirtError):
                pass  # the host's socket went away: nothing to tell it, and no one to tell

        threading.Thread(target=relay, name="sd_notify", daemon=True).start()


def ready(datagram: bytes) -> bytes | None:
    """The READY= line of a notification (its assignments, one a line), if it has one."""
    for line in datagram.split(b"\n"):
        if line.startswith(b"READY="):
            return line
    return None
