"""--log FILE and --log-format text|json, written the way runc writes them."""

import posix  # not os: see bin/ocirt ("posix")
import sys
import time

from . import jsonio
from .errors import printable
from .record import record

_APPEND = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC


def _stderr(text: str) -> None:
    """A line on stderr, written now; a stderr that takes nothing (2>/dev/full) is not an
    error of its own (the command's exit status says what happened)."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _open_log(path: str) -> int:
    """--log FILE opened for appending without waiting: a FIFO no one reads is ENXIO at once
    (runc's open waits for a reader for ever); one with a reader is written as a file."""
    fd = posix.open(path, _APPEND | posix.O_NONBLOCK, 0o644)
    try:
        posix.set_blocking(fd, True)
    except OSError:
        posix.close(fd)
        raise
    return fd


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@record
class Logger:
    path: str | None = None
    fmt: str = "text"
    debug_enabled: bool = False

    def open(self) -> None:
        """Create --log FILE now (runc does, before anything is logged); where it cannot be
        made, the command fails, as runc's does, its error on stderr."""
        if self.path:
            try:
                posix.close(_open_log(self.path))
            except OSError as e:
                path, self.path = self.path, None
                from .errors import OcirtError

                raise OcirtError(f"open {path}", e.errno) from None

    def _write(self, level: str, msg: str, stderr: bool = True) -> bool:
        """The line into --log FILE (True), else (no file, or it cannot be written) on stderr
        unless not `stderr`."""
        if self.fmt == "json":  # compact, as runc's logrus writes it
            line = f'{{"level":"{level}","msg":{jsonio.dumps(msg)},"time":"{_now()}"}}'
        else:
            line = f'time="{_now()}" level={level} msg={jsonio.dumps(msg)}'
        if self.path:
            try:
                fd = _open_log(self.path)
                try:
                    # (a lone surrogate, of an id's bytes that are no UTF-8: JSON's escape)
                    posix.write(fd, (line + "\n").encode(errors="backslashreplace"))
                finally:
                    posix.close(fd)
                return True
            except OSError:
                pass
        if stderr:
            _stderr(line + "\n")
        return False

    def error(self, msg: str, told: bool = False) -> None:
        """runc's fatal(): the log line, and the bare message on stderr when it went into a log
        file (one that cannot be written, /dev/full say: the line on stderr is all). `told`:
        stderr has it already (the container's init said it there): into the log file only."""
        if self._write("error", msg, stderr=not told) and not told:
            _stderr(printable(msg) + "\n")  # (one line, as the log's)

    def warning(self, msg: str) -> None:
        self._write("warning", msg)

    def debug(self, msg: str) -> None:
        """A level=debug line, with --debug only: what the runtime is doing."""
        if self.debug_enabled:
            self._write("debug", msg)

    @property
    def debugger(self):
        """The debug callable to hand to core operations: None without --debug (so that they
        skip composing the message)."""
        return self.debug if self.debug_enabled else None
