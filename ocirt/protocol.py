"""The typed messages the runtime parent and its children exchange over a SOCK_SEQPACKET pair.

    stage 1 -> parent   UserNsReady        "write my uid_map/gid_map"  (only with a new user ns)
    parent  -> stage 1  Proceed
    stage 1 -> parent   InitPid(pid)       the container's init, as the parent's pid ns sees it
    init    -> parent   HooksReady         mounts done, before pivot_root: run the runtime hooks
    parent  -> init     Proceed(state)     the state for createContainer/startContainer hooks
    init    -> parent   SeccompFd          the listener fd of SCMP_ACT_NOTIFY rides along (SCM_RIGHTS)
    parent  -> init     Proceed
    init    -> parent   Ready              waiting on exec.fifo
    any     -> parent   Failed(message, errno)
"""
from __future__ import annotations

# _socket, not socket: the socket module builds its IntEnums at import (~2 ms on every create)
import _socket
import struct  # not array: it registers with collections.abc (~2 ms)

from . import jsonio
from .errors import OcirtError
from .record import asdict, record


@record
class UserNsReady:
    pass


@record
class Proceed:
    state: dict | None = None   # the container state, for the hooks the init runs


@record
class InitPid:
    pid: int


@record
class HooksReady:
    pass


@record
class SeccompFd:
    pass


@record
class Ready:
    pass


@record
class Failed:
    message: str
    errno: int = 0


MESSAGES = {cls.__name__: cls for cls in (UserNsReady, Proceed, InitPid, HooksReady, SeccompFd, Ready, Failed)}


class Channel:
    def __init__(self, sock: _socket.socket):
        self.sock = sock
        self.received_fds: list[int] = []   # fds that came with the last message

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        return cls(a), cls(b)

    def send(self, msg, fds: tuple[int, ...] = ()) -> None:
        body = jsonio.dumps({"type": type(msg).__name__, **asdict(msg)}).encode()
        if fds:
            rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
            self.sock.sendmsg([body], rights)
        else:
            self.sock.send(body)

    def recv(self):
        """The next message; None when the other side closed without a word."""
        fds: list[int] = []
        data, ancillary, _, _ = self.sock.recvmsg(65536, _socket.CMSG_LEN(4 * 4))
        for level, kind, payload in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += struct.unpack(f"{len(payload) // 4}i", payload[:len(payload) // 4 * 4])
        self.received_fds = fds
        if not data:
            return None
        body = jsonio.loads(data)
        cls = MESSAGES[body.pop("type")]
        return cls(**{name: body[name] for name in cls.__record_fields__})

    def expect(self, cls, what: str):
        """Receive a message of type `cls`; a Failed or a hang-up becomes an OcirtError."""
        msg = self.recv()
        if isinstance(msg, Failed):
            raise OcirtError(msg.message, msg.errno or None)
        if msg is None:
            raise OcirtError(f"container init exited before {what}")
        if not isinstance(msg, cls):
            names = "/".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
            raise OcirtError(f"protocol error: expected {names}, got {type(msg).__name__}")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
