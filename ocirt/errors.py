"""Errors that reach the user as one line."""

import posix  # not os: see bin/ocirt ("posix")


class OcirtError(Exception):
    """A failure with a message and, when the kernel said no, its errno."""

    exit_code = 1  # the command line's exit status for it (a command may set its own: exec 255)
    told = False  # said on the command's stderr already (by the container's init): the log only

    def __init__(self, message: str, errno: int | None = None):
        self.message = message
        self.errno = errno
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.errno:
            return f"{self.message}: {errno_words(self.errno)}"
        return self.message


def go_quote(text: str) -> str:
    """`text` in double quotes, as Go's %q writes a printable string (runc's error messages)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def errno_words(errno: int) -> str:
    """The kernel's words for an errno, as Go prints them (lower case)."""
    return posix.strerror(errno).lower()


def errno_text(exc: BaseException) -> str:
    """The kernel's word for an OSError's errno (errno_words); else the exception's own text."""
    errno = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    return errno_words(errno) if errno else str(exc)


def oserror_line(exc: OSError) -> str:
    """What failed and why, for a process that reports it itself: "<operation>: <errno text>"."""
    return f"{describe_oserror(exc)}: {errno_text(exc)}"


def describe_oserror(exc: OSError, default: str = "system call failed") -> str:
    """The operation an OSError came from (a Kernel call's own words, its file); the errno
    text is added by OcirtError. `default` when it tells neither."""
    what = exc.strerror if exc.strerror and exc.strerror != posix.strerror(exc.errno or 0) else ""
    if exc.filename:
        what = f"{what} {exc.filename}".strip()
    return what or default


def process_start_failed(e: OcirtError, during_init: bool = True) -> None:
    """`e` in runc's words for a failure once the container's processes were started (engines
    and the tools around them look for them): "unable to start container process: ", and
    "error during container init: " before what failed in the container's setup, not in the
    process's own (its limits, cwd, identity, the program's lookup: runc's init has told its
    parent it is ready by then)."""
    inner = "error during container init: " if during_init else ""
    e.message = f"unable to start container process: {inner}{e.message}"


class ConfigError(OcirtError):
    """config.json (or exec's process.json) is wrong: `pointer` is a JSON pointer (RFC 6901)."""

    def __init__(self, pointer: str, rule: str, document: str = "config.json"):
        self.pointer = pointer or "/"
        self.rule = rule
        super().__init__(f"{document}: {self.pointer}: {rule}")


def json_pointer(path) -> str:
    """Turn a sequence of keys/indexes into a JSON pointer (RFC 6901)."""
    out = [pointer_part(part) for part in path]
    return "/" + "/".join(out) if out else "/"


def pointer_part(key) -> str:
    """One key or index as a JSON pointer holds it (RFC 6901: `~` and `/` escaped), printable: its
    control characters and lone surrogates in JSON's escapes (one line, any encoding)."""
    return printable(str(key).replace("~", "~0").replace("/", "~1"))


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` with what would break a one-line message or its encoding written as JSON escapes
    it: control characters (a newline: a second line) and lone surrogates (a name's bytes that
    are no UTF-8, which no UTF-8 stream takes)."""
    if text.isprintable():
        return text
    return "".join(
        ch
        if ch.isprintable()
        else _ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        for ch in text
    )
