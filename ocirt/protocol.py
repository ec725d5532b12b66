"""The typed messages the runtime parent and its children exchange over a SOCK_SEQPACKET pair.

parent  -> stage 1  Proceed            it is in the cgroup (not sent with a create.LateCgroup)
stage 1 -> parent   UserNsReady        "write my uid_map/gid_map"  (only with a new user ns)
parent  -> stage 1  Proceed
stage 1 -> parent   InitPid(pid)       the container's init, as the parent's pid ns sees it
                                       (one fork, stages.one_fork: no stage 1, and the init
                                       itself sends InitPid(0), "the process you forked", once
                                       it has entered its namespaces; the rest is the same)
parent  -> init     Proceed(binds)     go on (LateCgroup: you are in the cgroup now; before
                                       it, without a new user ns, a first Proceed as soon as
                                       the cgroup's directories exist: stages.told_when_made;
                                       both carry the directories the cgroup mount binds)
init    -> parent   HooksReady         mounts done, before pivot_root: run the runtime hooks
parent  -> init     Proceed(state)     the state for createContainer/startContainer hooks
init    -> parent   SeccompFd          the listener fd of SCMP_ACT_NOTIFY rides along (SCM_RIGHTS)
parent  -> init     Proceed
init    -> parent   Ready              waiting on exec.fifo
any     -> parent   Failed(message, errno)

exec's children (ocirt/execute.py): stage 1 joins the namespaces and forks at once, then
stage 1 -> parent   InitPid(pid)       the new process (one fork: not sent; the parent forked it)
parent  -> process  Proceed            it is in the container's cgroup (moved, or born there);
                                       the process sets itself up meanwhile, and waits for
                                       this before its seccomp filter, or its Ready
process -> parent   SeccompFd, Ready   as the init's, then it execs
"""

from __future__ import annotations

# _socket, not socket: the socket module builds its IntEnums at import (~2 ms on every create)
import _socket
import posix
import sys

from . import jsonio
from .errors import OcirtError
from .record import asdict, fields, record


@record
class UserNsReady:
    pass


@record
class Proceed:
    state: dict | None = None  # the container state, for the hooks the init runs
    binds: list | None = None  # to the init, with a LateCgroup: its cgroup mount's directories


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
    setup: bool = True  # of the container's setup; False: of the process's own (ProcessSetupError)

    def error(self) -> ChildFailed:
        return ChildFailed(self.message, self.errno or None, self.setup)


class ChildFailed(OcirtError):
    """A child's Failed, raised in the parent: `setup` as the message's."""

    def __init__(self, message: str, errno: int | None = None, setup: bool = True):
        super().__init__(message, errno)
        self.setup = setup


CHUNK = 32768  # a packet's payload: well under the socket buffer, any message size passes
MORE, LAST = b"+", b"."
_MSG_TRUNC = 0x20  # MSG_TRUNC (Linux)

MESSAGES = {
    cls.__name__: cls for cls in (UserNsReady, Proceed, InitPid, HooksReady, SeccompFd, Ready, Failed)
}


class HungUp(OcirtError):
    """The other side closed the channel without a word (it exited, or was killed)."""


def _pack_fds(fds) -> bytes:
    """SCM_RIGHTS' payload: C ints in this machine's order. No module import: the init sends
    its seccomp listener fd once its root is the container's, where none can be loaded."""
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def _unpack_fds(payload: bytes) -> list[int]:
    return [
        int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True) for i in range(0, len(payload) - 3, 4)
    ]


class Channel:
    def __init__(self, sock: _socket.socket):
        self.sock = sock
        self.received_fds: list[int] = []  # fds that came with the last message

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        try:
            a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        except OSError as e:  # (no fd left: RLIMIT_NOFILE)
            raise OcirtError("socketpair", e.errno) from None
        return cls(a), cls(b)

    def send(self, msg, fds: tuple[int, ...] = ()) -> None:
        """One message as one or more packets of at most CHUNK bytes, each after a one-byte mark:
        MORE, or LAST for the packet that ends it. fds ride with the first packet."""
        body = jsonio.dumps({"type": type(msg).__name__, **asdict(msg)}).encode()
        for at in range(0, max(len(body), 1), CHUNK):
            mark = LAST if at + CHUNK >= len(body) else MORE
            packet = mark + body[at : at + CHUNK]
            if fds and at == 0:
                rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _pack_fds(fds))]
                self.sock.sendmsg([packet], rights)
            else:  # write(2), not send(2): the init's Ready comes after the container's
                # seccomp filter, which may deny sendto (a profile without networking)
                posix.write(self.sock.fileno(), packet)

    def recv(self):
        """The next message; None when the other side closed without a word."""
        fds: list[int] = []
        parts: list[bytes] = []
        while True:
            try:
                data, ancillary, flags, _ = self.sock.recvmsg(CHUNK + 1, _socket.CMSG_LEN(4 * 4))
            except ConnectionResetError:
                # the other side left with a message of ours unread: the kernel says so once,
                # before what it had sent is read (its Failed, say); then that, then the end
                data, ancillary, flags, _ = self.sock.recvmsg(CHUNK + 1, _socket.CMSG_LEN(4 * 4))
            for level, kind, payload in ancillary:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    fds += _unpack_fds(payload)
            if not data:
                if parts:
                    raise OcirtError("protocol error: the message was cut short")
                self.received_fds = fds
                return None
            if flags & _MSG_TRUNC or data[:1] not in (MORE, LAST):
                raise OcirtError("protocol error: a malformed message")
            parts.append(data[1:])
            if data[:1] == LAST:
                break
        self.received_fds = fds
        try:
            body = jsonio.loads(b"".join(parts))
            cls = MESSAGES[body.pop("type")]
            return cls(**{name: body[name] for name in fields(cls)})
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise OcirtError(f"protocol error: a malformed message ({e})") from None

    def expect(self, cls, what: str):
        """Receive a message of type `cls`; a Failed or a hang-up becomes an OcirtError."""
        msg = self.recv()
        if isinstance(msg, Failed):
            raise msg.error()
        if msg is None:
            raise HungUp(f"container init exited before {what}")
        if not isinstance(msg, cls):
            names = "/".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
            raise OcirtError(f"protocol error: expected {names}, got {type(msg).__name__}")
        return msg

    def hear_out(self, timeout: float = 2.0) -> list:
        """Say no more (the other side's next receive is a hang-up), and hear it out: its
        messages until it has closed its end (or `timeout` passed without one)."""
        try:
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:  # the other side is gone already
            pass
        self.sock.settimeout(timeout)
        return self._read_all()

    def raise_failure_queued(self) -> None:
        """Raise the error of a Failed the other side sent and that is not read yet (it may
        have failed and gone while this side was busy); nothing if there is none. Does not
        wait for more."""
        self.sock.setblocking(False)
        try:
            heard = self._read_all()
        finally:
            self.sock.setblocking(True)
        for msg in heard:
            if isinstance(msg, Failed):
                raise msg.error() from None

    def _read_all(self) -> list:
        """The messages until the end, an error (BlockingIOError when non-blocking: no more
        for now; a timeout) or 64 of them."""
        heard: list = []
        for _ in range(64):
            try:
                msg = self.recv()
            except (OSError, OcirtError):
                break
            if msg is None:
                break
            heard.append(msg)
        return heard

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
