"""JSON through the C accelerator `_json`, without the json package.

`import json` pulls in re and enum: ~7 ms in a fresh interpreter, a third of what `ocirt state`
costs. The package is a thin layer over `_json` (scanner and encoder in C); this is the same
layer, for what ocirt reads and writes: strict JSON (no NaN/Infinity), UTF-8 text.
"""

import _json
import posix  # not os: see ocirt/paths.py

from .gonum import decimal


class _BadToken(ValueError):
    """A literal the scanner read but ocirt refuses: `token` is its text, found again by _find."""

    def __init__(self, token: str, msg: str):
        super().__init__(msg)
        self.token = token
        self.msg = msg


def _no_constants(name):
    raise _BadToken(name, f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise _BadToken(text, "number out of range")
    return value


def _int(text: str) -> int:
    try:
        return decimal(text)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
        raise _BadToken(text, "integer with too many digits") from None


_INF = float("inf")


class _Decoder:  # the attributes _json.make_scanner reads off a json.JSONDecoder
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_float)  # floats are rare: their Python call costs nothing
    parse_int: object = staticmethod(decimal)  # int() but for its first call's cost (gonum.py);
    # its ValueError (too many digits) sends _error to _Checking
    parse_constant = staticmethod(_no_constants)


class _Checking(_Decoder):
    parse_int = staticmethod(_int)


_scan = _json.make_scanner(_Decoder)  # type: ignore[arg-type]  # the attributes are all it reads
_scan_checking = _json.make_scanner(_Checking)  # type: ignore[arg-type]
_WS = " \t\n\r"
_str = _json.encode_basestring  # non-ASCII stays as it is: the output is UTF-8


def _default(o):
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _str, None, ": ", ", ", False, False, False)
_encode_go = _json.make_encoder(None, _default, _str, None, ":", ",", False, False, False)


class JSONError(ValueError):
    """Not one JSON document: `msg` at `pos` (a character index), `lineno` and `colno` from 1."""

    def __init__(self, msg: str, text: str, pos: int):
        self.msg = msg
        self.pos = pos
        self.lineno = text.count("\n", 0, pos) + 1
        self.colno = pos - text.rfind("\n", 0, pos)
        super().__init__(f"line {self.lineno} column {self.colno}: {msg}")


def loads(text: str | bytes):
    """Decode one JSON document; JSONError (a ValueError, with line and column) when it is not one,
    is nested deeper than the interpreter's recursion limit allows, or is not UTF-8."""
    if isinstance(text, (bytes, bytearray)):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            good = bytes(raw[: e.start]).decode("utf-8")
            raise JSONError("not UTF-8 text", good, len(good)) from None
    end = len(text)
    i = 0
    while i < end and text[i] in _WS:
        i += 1
    try:
        value, i = _scan(text, i)
    except StopIteration as e:
        raise JSONError("Expecting value", text, e.value) from None
    except RecursionError:
        raise JSONError("nested too deeply", text, _deepest(text)) from None
    except _BadToken as e:
        raise JSONError(e.msg, text, _find(text, e.token)) from None
    except (SystemError, ValueError, MemoryError):
        raise _error(text) from None
    while i < end and text[i] in _WS:
        i += 1
    if i != end:
        raise JSONError("Extra data", text, i)
    return value


def _error(text: str) -> JSONError:
    """Why `text` failed to parse. The C scanner reports syntax errors with json.decoder's
    JSONDecodeError, which it only finds once json.decoder is imported (without it: a SystemError),
    so that import happens here, on the error path only; nesting is measured without recursion."""
    import json.decoder

    i = 0
    while i < len(text) and text[i] in _WS:
        i += 1
    try:
        _scan_checking(text, i)
    except json.decoder.JSONDecodeError as e:
        return JSONError(e.msg, text, e.pos)
    except _BadToken as e:
        return JSONError(e.msg, text, _find(text, e.token))
    except StopIteration as e:
        return JSONError("Expecting value", text, e.value)
    except RecursionError:
        return JSONError("nested too deeply", text, _deepest(text))
    except (ValueError, MemoryError) as e:
        return JSONError(str(e) or type(e).__name__, text, i)
    return JSONError("invalid JSON", text, i)


_NUMBER = frozenset("0123456789+-.eE")


def _unquoted(text: str):
    """The indices of `text` outside its strings (a string's quotes and body skipped)."""
    i = 0
    end = len(text)
    while i < end:
        if text[i] == '"':
            i += 1
            while i < end and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        else:
            yield i
        i += 1


def _find(text: str, token: str) -> int:
    """The index of the first `token` (a number or constant as the scanner read it) outside
    strings: the scanner stops at the first literal it refuses, so that is the one."""
    for i in _unquoted(text):
        if (
            text.startswith(token, i)
            and (i == 0 or text[i - 1] not in _NUMBER)
            and text[i + len(token) : i + len(token) + 1] not in _NUMBER
        ):
            return i
    return 0


def _deepest(text: str) -> int:
    """The index of the first '[' or '{' at the deepest nesting (strings skipped), counted without
    recursion: where a document too deep for the C scanner's recursion is shown to fail."""
    depth = deepest = where = 0
    for i in _unquoted(text):
        c = text[i]
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, i
        elif c in "]}":
            depth -= 1
    return where


def dumps(value, indent: str | None = None) -> str:
    """Compact JSON; with `indent`, one member per line (as json.dumps(indent=...))."""
    if indent is None:
        return "".join(_encode(value, 0))
    return _pretty(value, indent, "")


# What Go's encoding/json escapes that Python's does not (runc's `state` and `list` print so)
_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def go_escaped(text: str) -> str:
    """JSON text with Go's extra escapes: <, > and & (HTML-safe) and U+2028/U+2029. They can
    only occur inside strings, so the whole text is rewritten."""
    for char, escape in _GO_ESCAPES:
        if char in text:
            text = text.replace(char, escape)
    return text


def go_dumps(value) -> str:
    """JSON as Go's json.Marshal writes it (runc's `list -f json`): no spaces, non-ASCII as it
    is, Go's escapes (go_escaped)."""
    return go_escaped("".join(_encode_go(value, 0)))


def go_time(created: str) -> str:
    """An RFC 3339 time with nanoseconds as Go's time.RFC3339Nano prints it: trailing zeros of
    the fraction dropped, and the dot with them when nothing is left."""
    head, dot, frac = created.partition(".")
    if not dot or not frac.endswith("Z") or not frac[:-1].isdigit():
        return created
    digits = frac[:-1].rstrip("0")
    return f"{head}.{digits}Z" if digits else f"{head}Z"


def _pretty(value, indent: str, pad: str) -> str:
    inner = pad + indent
    if isinstance(value, dict) and value:
        items = (f"{inner}{_str(str(k))}: {_pretty(v, indent, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and value:
        items = (inner + _pretty(v, indent, inner) for v in value)
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return dumps(value)


# The most of one document ocirt reads (config.json, process.json, update's resources): a file
# that is a device (/dev/zero, /dev/urandom) or a runaway would otherwise be read until memory ends.
MAX_DOCUMENT = 64 << 20
_STARTS = frozenset('{["-0123456789tfn')
_BLOCK = 1 << 16


def read_document(f) -> bytes | str:
    """An open file's JSON text, read to its end: no more than MAX_DOCUMENT (a JSONError past
    it), and only its first block when that is whole and cannot begin a document (loads then
    says where)."""
    return _read_limited(f.read)


def read_fd(fd: int) -> bytes:
    """read_document of a file descriptor (posix.read: no file object)."""
    return _read_limited(lambda n: posix.read(fd, n))


def _read_limited(read):
    parts: list = []
    size = 0
    while True:
        chunk = read(_BLOCK)
        if not chunk:
            break
        # a whole first block: more may follow, unless it cannot begin a document (a smaller
        # one, state.json's or config.json's, is read to its end and checked once, by loads)
        if not parts and len(chunk) == _BLOCK and not _may_begin(chunk):
            return chunk
        size += len(chunk)
        if size > MAX_DOCUMENT:
            raise JSONError(f"larger than {MAX_DOCUMENT >> 20} MiB", "", 0)
        parts.append(chunk)
    return parts[0][:0].join(parts) if parts else b""


def _may_begin(chunk: bytes | str) -> bool:
    """Whether a document's first block may begin a JSON document: its first character can, and
    (bytes) it is UTF-8 but for a character cut at its end."""
    if isinstance(chunk, str):
        text = chunk.lstrip(_WS)[:1]
        return not text or text in _STARTS
    head = chunk.lstrip(b" \t\n\r")[:1]
    if head and chr(head[0]) not in _STARTS:
        return False
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(chunk) - 3 and e.reason == "unexpected end of data"
    return True


def load(f):
    return loads(read_document(f))


def open_document(path: str):
    """File `path` opened for reading (binary) without waiting: a FIFO no one writes to reads
    as empty (not a wait for ever); one with a writer, or a pipe (`--process <(...)`), is read
    to its end as any file."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK)
    try:
        posix.set_blocking(fd, True)
    except OSError:
        posix.close(fd)
        raise
    return open(fd, "rb")


def load_path(path: str):
    """The JSON document in file `path` (open_document): OSError when it cannot be read,
    JSONError when it is not one (read_document's limits)."""
    with open_document(path) as f:
        return load(f)
