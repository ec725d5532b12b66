"""process.terminal: a pseudo-terminal made inside the container, its master sent to the caller.

As runc does it with --console-socket: the init opens /dev/ptmx of the container's own devpts
(after pivot_root), sends the master over the AF_UNIX socket with SCM_RIGHTS, and makes the slave
its controlling terminal and stdio. The engine (conmon, containerd-shim) holds the master.
"""

from __future__ import annotations

import _signal
import _socket
import fcntl
import posix  # not os: see ocirt/paths.py
import struct

from . import paths

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def connect(path: str) -> int:
    """In the parent, before fork: the connected socket's fd (inherited by the init). The
    connect does not wait: a listener whose backlog is full (it accepts no more) is EAGAIN at
    once, as Go's net.Dial makes it for runc, where a blocking connect waited for good."""
    from .errors import OcirtError

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
    try:
        sock.connect(path)  # (AF_UNIX: done at once, or refused; never EINPROGRESS)
        sock.setblocking(True)
    except OSError as e:
        sock.close()
        # runc's words (Go's net.Dial): engines and people read "dial unix PATH: connect: ..."
        raise OcirtError(f"dial unix {path}: connect", e.errno) from None
    return sock.detach()


def setup(socket_fd: int, size: dict | None, owner: int | None = None, kernel=None) -> None:
    """In the init (or exec's process), after pivot_root: the pty, sent and made our terminal.

    `owner` (process.user.uid) gets the pty, so that a process that is not root can use its
    terminal; its group stays devpts' (tty), as with runc. Where the uid is not mapped (a user
    namespace), the pty is left as it is. With `kernel` (the init of a container with a mount
    namespace of its own, before its root is made read-only), the pty is also bound onto the
    container's /dev/console, as runc does (see mount_console)."""
    master = posix.open("/dev/ptmx", posix.O_RDWR | posix.O_NOCTTY | posix.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        slave = posix.open(f"/dev/pts/{number}", posix.O_RDWR | posix.O_NOCTTY)
        if owner:
            try:
                posix.fchown(slave, owner, -1)
            except OSError as e:
                if e.errno not in (22, 1):  # EINVAL, EPERM: not mapped here
                    raise
        if size:
            fcntl.ioctl(
                slave, TIOCSWINSZ, struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0)
            )
        if kernel is not None:
            mount_console(kernel, f"/dev/pts/{number}")
        send_master(socket_fd, master)
    finally:
        posix.close(master)
    posix.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        posix.dup2(slave, fd)
    if slave > 2:
        posix.close(slave)


def mount_console(kernel, pty: str) -> None:
    """The init's pty, bound onto /dev/console (made as an empty file, mode 0666, where the
    rootfs has none): programs that write to the console (init systems, getty, syslog's
    fallback) reach the container's terminal, not the host's. As runc's init: before the
    master is sent and before the root is finished (read-only, propagation)."""
    from .errors import OcirtError

    try:  # O_EXCL: an existing node (or symlink) is not opened, only bound over
        fd = posix.open(
            "/dev/console", posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o666
        )
    except FileExistsError:
        pass
    except OSError as e:
        raise OcirtError("create /dev/console", e.errno) from None
    else:
        try:
            posix.fchmod(fd, 0o666)  # whatever the umask
        finally:
            posix.close(fd)
    try:
        kernel.mount(pty, "/dev/console", None, 4096, None)  # MS_BIND
    except OSError as e:
        raise OcirtError(f"bind {pty} onto /dev/console", e.errno) from None


def send_master(socket_fd: int, master: int) -> None:
    """The pty master over a connected --console-socket (SCM_RIGHTS, runc's "/dev/ptmx" name);
    the socket is closed."""
    from .errors import OcirtError

    sock = _socket.socket(fileno=socket_fd)
    try:
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", master))]
        sock.sendmsg([b"/dev/ptmx"], rights)
    except OSError as e:  # (the listener closed the connection: EPIPE)
        raise OcirtError("send the pty master over the console socket", e.errno) from None
    finally:
        sock.close()


def host_terminal() -> int | None:
    """The terminal we were started on: stderr, stdout or stdin (runc's order: any of them may
    be redirected), else our controlling terminal (/dev/tty, opened: the caller closes it, as
    close_host_terminal does); None without one."""
    for fd in (2, 1, 0):
        if posix.isatty(fd):
            return fd
    try:
        return posix.open("/dev/tty", posix.O_RDWR | posix.O_NOCTTY | posix.O_CLOEXEC)
    except OSError:
        return None


def close_host_terminal(fd: int | None) -> None:
    if fd is not None and fd > 2:
        posix.close(fd)


def proxy(master: int, host: int | None = 0) -> None:
    """`run`/`exec` with a terminal and no --console-socket (as runc -t): our stdin goes to the
    container's pty, its output to our stdout, until the container side closes. Our terminal
    (`host`, see host_terminal) is put in raw mode meanwhile (the container's pty does the line
    discipline), its size given to the pty, and its mode given back at the end.

    The pty takes our input as fast as the container reads it, and no faster: the master is
    non-blocking and what it did not take yet waits here (our stdin is not read meanwhile), so
    that the output is always copied (a blocking write of `yes | ocirt run -t` to a container
    that reads nothing stopped the copy of its output, which then filled the pty, and never
    ended, even after the container had exited). Output that cannot be written (a reader of
    our stdout gone: EPIPE) is an OcirtError naming it: the caller stops the container."""
    import select
    import termios
    import tty

    # A signal's Python handler (the relay to the container's process, the resize) runs between
    # bytecodes: one that comes after the last look before select's system call would wait there
    # until the next output or input. Its byte in the wakeup pipe ends the wait at once.
    wake, woken = posix.pipe2(posix.O_NONBLOCK | posix.O_CLOEXEC)
    before = _signal.set_wakeup_fd(woken, warn_on_full_buffer=False)
    saved = None
    try:
        if host is not None:
            resize(master, host)
            if _foreground(host):  # a background job may not change the terminal (SIGTTOU)
                saved = termios.tcgetattr(host)
                tty.setraw(host, termios.TCSANOW)  # not TCSAFLUSH: it waits for pending output
        posix.set_blocking(master, False)
        reading = True  # our stdin, until its end
        pending = b""  # of our stdin, not taken by the pty yet
        while True:
            readers = [master, 0, wake] if reading and not pending else [master, wake]
            ready, writable, _ = select.select(readers, [master] if pending else [], [])
            if wake in ready:
                _drain(wake)
            if master in ready:
                try:
                    data = posix.read(master, 65536)
                except BlockingIOError:
                    data = None
                except OSError:  # EIO: every slave fd is closed, the container is done
                    data = b""
                if data == b"":
                    return
                if data:
                    _write_out(data)
            if writable:
                try:
                    pending = pending[posix.write(master, pending) :]
                except BlockingIOError:
                    pass
                except OSError:  # the container's side is gone: its input goes nowhere
                    pending, reading = b"", False
            if 0 in ready:
                try:
                    data = posix.read(0, 65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data:
                    pending = data
                elif data == b"":
                    reading = False  # stdin closed: keep copying the output
    finally:
        _signal.set_wakeup_fd(before)
        posix.close(wake)
        posix.close(woken)
        if saved is not None and host is not None:
            termios.tcsetattr(host, termios.TCSANOW, saved)


def _foreground(fd: int) -> bool:
    try:
        return posix.tcgetpgrp(fd) == posix.getpgrp()
    except OSError:
        return False


def _drain(fd: int) -> None:
    """Read a non-blocking fd until it is empty."""
    try:
        while posix.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _write_out(data: bytes) -> None:
    """The container's output, all of it, to our stdout (waited for where the caller left it
    non-blocking)."""
    import select

    from .errors import OcirtError

    while data:
        try:
            data = data[posix.write(1, data) :]
        except (InterruptedError, BlockingIOError):
            select.select([], [1], [])
        except OSError as e:
            raise OcirtError("write the container's output to stdout", e.errno) from None


def size_of(host: int | None) -> dict | None:
    """The size of our terminal as a process.consoleSize ({"height", "width"}), or None."""
    if host is None:
        return None
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(host, 0x5413, b"\0" * 8))
    except OSError:
        return None
    return {"height": rows, "width": cols} if rows or cols else None


def resize(master: int, host: int | None = 0) -> None:
    """Give the container's pty the size of our terminal (also on SIGWINCH)."""
    if host is None:
        return
    try:
        size = fcntl.ioctl(host, 0x5413, struct.pack("HHHH", 0, 0, 0, 0))  # TIOCGWINSZ
        fcntl.ioctl(master, TIOCSWINSZ, size)
    except OSError:
        pass


def listener() -> tuple:
    """A console socket of our own (`run`/`exec` with a terminal and no --console-socket, as
    runc -t): (listening socket, its path) in a new private directory; close() removes both."""
    import tempfile

    directory = tempfile.mkdtemp(prefix="ocirt-console-")
    path = paths.join(directory, "console.sock")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        sock.listen(1)
    except BaseException:
        sock.close()
        close(None, path)
        raise
    return sock, path


def close(sock, path: str) -> None:
    """Undo listener()."""
    if sock is not None:
        sock.close()
    for remove in (posix.unlink, posix.rmdir):
        try:
            remove(path)
        except OSError:
            pass
        path = paths.dirname(path)


def receive_master(listener) -> int:
    """Accept the init's connection on our console socket and take the pty master from it."""
    fd, _ = listener._accept()  # _socket's accept: the fd of the connection
    conn = _socket.socket(fileno=fd)
    try:
        _, ancillary, _, _ = conn.recvmsg(64, _socket.CMSG_LEN(4))
    finally:
        conn.close()
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            return struct.unpack("i", payload[:4])[0]
    from .errors import OcirtError

    raise OcirtError("console socket: no pty master received")
