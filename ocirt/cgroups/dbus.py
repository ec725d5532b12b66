"""A minimal D-Bus client: enough to ask systemd for transient units.

Only what the systemd cgroup driver needs: SASL EXTERNAL authentication on a Unix socket,
method calls with typed arguments, their replies and errors, and signals (JobRemoved) read
while waiting. Little-endian messages, no fd passing, no introspection.

Values are written from a D-Bus signature and plain Python values:

    y n q i u x t  int          b  bool            d  float
    s o g          str          v  Variant(signature, value)
    a...           list         a{..}  dict         (...)  tuple

and read back the same way (a variant comes back as a Variant).

Stdlib only (socket, struct): this runs inside create.
"""

from __future__ import annotations

import os
import socket
import struct
import time

from ..errors import OcirtError

SYSTEMD_PRIVATE = "/run/systemd/private"
SYSTEM_BUS = "/run/dbus/system_bus_socket"

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
_NO_REPLY_EXPECTED = 0x1

# header field codes
_PATH, _INTERFACE, _MEMBER, _ERROR_NAME, _REPLY_SERIAL, _DESTINATION, _SENDER, _SIGNATURE = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
)
_FIELD_SIG = {
    _PATH: "o",
    _INTERFACE: "s",
    _MEMBER: "s",
    _ERROR_NAME: "s",
    _REPLY_SERIAL: "u",
    _DESTINATION: "s",
    _SENDER: "s",
    _SIGNATURE: "g",
    9: "u",
}

_FIXED = {
    "y": ("B", 1),
    "b": ("I", 4),
    "n": ("h", 2),
    "q": ("H", 2),
    "i": ("i", 4),
    "u": ("I", 4),
    "x": ("q", 8),
    "t": ("Q", 8),
    "d": ("d", 8),
    "h": ("I", 4),
}
_ALIGN = {
    "y": 1,
    "b": 4,
    "n": 2,
    "q": 2,
    "i": 4,
    "u": 4,
    "x": 8,
    "t": 8,
    "d": 8,
    "h": 4,
    "s": 4,
    "o": 4,
    "g": 1,
    "v": 1,
    "a": 4,
    "(": 8,
    "{": 8,
}


class DBusError(OcirtError):
    """An error reply: `name` is the D-Bus error name (org.freedesktop.systemd1.NoSuchUnit)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{message} ({name})" if message else name)
        self.name = name


class Variant:
    __slots__ = ("signature", "value")

    def __init__(self, signature: str, value):
        self.signature = signature
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Variant) and self.signature == other.signature and self.value == other.value

    def __repr__(self):
        return f"Variant({self.signature!r}, {self.value!r})"


class Message:
    __slots__ = ("type", "flags", "serial", "fields", "body")

    def __init__(self, type_: int, serial: int, fields: dict, body: tuple, flags: int = 0):
        self.type = type_
        self.flags = flags
        self.serial = serial
        self.fields = fields
        self.body = body

    @property
    def member(self):
        return self.fields.get(_MEMBER)

    @property
    def interface(self):
        return self.fields.get(_INTERFACE)

    @property
    def path(self):
        return self.fields.get(_PATH)

    @property
    def reply_serial(self):
        return self.fields.get(_REPLY_SERIAL)

    @property
    def error_name(self):
        return self.fields.get(_ERROR_NAME)

    def __repr__(self):
        return f"Message(type={self.type}, fields={self.fields!r}, body={self.body!r})"


# ---------------------------------------------------------------- signatures


def split_signature(sig: str) -> list:
    """'sa(sv)a{sv}' -> ['s', 'a(sv)', 'a{sv}']: the complete types, in order."""
    out, i = [], 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _type_end(sig: str, i: int) -> int:
    c = sig[i] if i < len(sig) else ""
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        j = i + 1
        while j < len(sig) and sig[j] != close:
            j = _type_end(sig, j)
        if j >= len(sig):
            raise ValueError(f"unbalanced D-Bus signature {sig!r}")
        return j + 1
    if c in _FIXED or c in "sogv":
        return i + 1
    raise ValueError(f"bad D-Bus signature {sig!r} at {i}")


# ---------------------------------------------------------------- writing


class _Writer:
    def __init__(self):
        self.buf = bytearray()

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def write(self, t: str, v) -> None:
        c = t[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.pad(size)
            self.buf += struct.pack("<" + fmt, bool(v) if c == "b" else v)
        elif c in "so":
            data = v.encode()
            self.pad(4)
            self.buf += struct.pack("<I", len(data)) + data + b"\0"
        elif c == "g":
            data = v.encode()
            self.buf += struct.pack("<B", len(data)) + data + b"\0"
        elif c == "v":
            self.write("g", v.signature)
            self.write(v.signature, v.value)
        elif c == "(":
            self.pad(8)
            for sub, item in zip(split_signature(t[1:-1]), v, strict=True):
                self.write(sub, item)
        elif c == "a":
            elem = t[1:]
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            if elem[0] == "{":
                key_t, val_t = split_signature(elem[1:-1])
                for k, item in v.items():
                    self.pad(8)
                    self.write(key_t, k)
                    self.write(val_t, item)
            else:
                for item in v:
                    self.write(elem, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        else:
            raise ValueError(f"cannot write D-Bus type {t!r}")


def marshal(signature: str, values) -> bytes:
    w = _Writer()
    for t, v in zip(split_signature(signature), values, strict=True):
        w.write(t, v)
    return bytes(w.buf)


def encode_message(
    type_: int, serial: int, fields: dict, signature: str = "", body=(), flags: int = 0
) -> bytes:
    payload = marshal(signature, body) if signature else b""
    if signature:
        fields = {**fields, _SIGNATURE: signature}
    w = _Writer()
    w.buf += struct.pack("<BBBBII", ord("l"), type_, flags, 1, len(payload), serial)
    w.write("a(yv)", [(code, Variant(_FIELD_SIG[code], value)) for code, value in sorted(fields.items())])
    w.pad(8)
    return bytes(w.buf) + payload


# ---------------------------------------------------------------- reading


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, little: bool = True):
        self.data = data
        self.pos = pos
        self.e = "<" if little else ">"

    def align(self, n: int) -> None:
        self.pos += -self.pos % n

    def read(self, t: str):
        c = t[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.align(size)
            (v,) = struct.unpack_from(self.e + fmt, self.data, self.pos)
            self.pos += size
            return bool(v) if c == "b" else v
        if c in "so":
            self.align(4)
            (n,) = struct.unpack_from(self.e + "I", self.data, self.pos)
            s = self.data[self.pos + 4 : self.pos + 4 + n].decode("utf-8", "surrogateescape")
            self.pos += 4 + n + 1
            return s
        if c == "g":
            n = self.data[self.pos]
            s = self.data[self.pos + 1 : self.pos + 1 + n].decode()
            self.pos += 1 + n + 1
            return s
        if c == "v":
            sig = self.read("g")
            return Variant(sig, self.read(sig))
        if c == "(":
            self.align(8)
            return tuple(self.read(sub) for sub in split_signature(t[1:-1]))
        if c == "a":
            elem = t[1:]
            self.align(4)
            (n,) = struct.unpack_from(self.e + "I", self.data, self.pos)
            self.pos += 4
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            if elem[0] == "{":
                key_t, val_t = split_signature(elem[1:-1])
                out = {}
                while self.pos < end:
                    self.align(8)
                    k = self.read(key_t)
                    out[k] = self.read(val_t)
                return out
            items = []
            while self.pos < end:
                items.append(self.read(elem))
            return items
        raise ValueError(f"cannot read D-Bus type {t!r}")


def unmarshal(signature: str, data: bytes, little: bool = True) -> tuple:
    r = _Reader(data, 0, little)
    return tuple(r.read(t) for t in split_signature(signature))


def message_length(head: bytes) -> int:
    """Total length of the message whose first 16 bytes are `head`."""
    e = "<" if head[0:1] == b"l" else ">"
    body_len, _serial, fields_len = struct.unpack_from(e + "III", head, 4)
    return 16 + fields_len + (-fields_len % 8) + body_len


def decode_message(data: bytes) -> Message:
    little = data[0:1] == b"l"
    if not little and data[0:1] != b"B":
        raise OcirtError("D-Bus: bad message (endianness byte)")
    e = "<" if little else ">"
    type_, flags, _version, body_len, serial = struct.unpack_from(e + "BBBII", data, 1)
    r = _Reader(data, 12, little)
    fields = {code: var.value for code, var in r.read("a(yv)")}
    r.align(8)
    sig = fields.get(_SIGNATURE, "")
    body: tuple = ()
    if sig:
        br = _Reader(data[r.pos : r.pos + body_len], 0, little)
        body = tuple(br.read(t) for t in split_signature(sig))
    return Message(type_, serial, fields, body, flags)


# ---------------------------------------------------------------- connection


class Connection:
    """One authenticated connection to a bus, or to systemd's private socket."""

    def __init__(self, path: str, timeout: float = 30.0, hello: bool | None = None):
        self.path = path
        self.timeout = timeout
        self._serial = 0
        self._buf = b""
        self.pending: list = []  # messages read while waiting for something else
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self._authenticate()
            # A message bus wants Hello() first; systemd's private socket is peer to peer.
            if hello if hello is not None else path != SYSTEMD_PRIVATE:
                self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
        except OSError as e:
            self.sock.close()
            raise OcirtError(f"cannot connect to D-Bus at {path}", errno=e.errno) from None
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _authenticate(self) -> None:
        # BEGIN goes with AUTH, as sd-bus's own clients send it: systemd (252 at least) does not
        # dispatch a message that arrives in the same read as a lone BEGIN until more data
        # comes, so a call sent right after BEGIN could wait forever.
        uid = str(os.geteuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\nBEGIN\r\n")
        line = self._read_line()
        if not line.startswith(b"OK "):
            raise OcirtError(
                f"D-Bus authentication refused by {self.path}: {line.decode(errors='replace').strip()}"
            )

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OcirtError(f"D-Bus: {self.path} closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _recv_message(self, deadline: float) -> Message:
        while True:
            if len(self._buf) >= 16:
                n = message_length(self._buf[:16])
                if len(self._buf) >= n:
                    data, self._buf = self._buf[:n], self._buf[n:]
                    return decode_message(data)
            left = deadline - time.monotonic()
            if left <= 0:
                raise OcirtError(f"D-Bus: no answer from {self.path} in {self.timeout:g}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise OcirtError(f"D-Bus: {self.path} closed the connection")
            self._buf += chunk

    def send(
        self, destination: str, path: str, interface: str, member: str, signature: str = "", args=()
    ) -> int:
        self._serial += 1
        fields = {_PATH: path, _INTERFACE: interface, _MEMBER: member}
        if destination:
            fields[_DESTINATION] = destination
        self.sock.sendall(encode_message(METHOD_CALL, self._serial, fields, signature, args))
        return self._serial

    def call(
        self, destination: str, path: str, interface: str, member: str, signature: str = "", args=()
    ) -> tuple:
        """A method call; returns the reply's body, raises DBusError on an error reply."""
        serial = self.send(destination, path, interface, member, signature, args)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._recv_message(deadline)
            if msg.type in (METHOD_RETURN, ERROR) and msg.reply_serial == serial:
                if msg.type == ERROR:
                    text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                    raise DBusError(msg.error_name or "unknown error", text)
                return msg.body
            if msg.type == SIGNAL:
                self.pending.append(msg)

    def wait_signal(self, match, timeout: float | None = None) -> Message:
        """The first signal (already read, or still to come) for which match(msg) is true."""
        for i, msg in enumerate(self.pending):
            if match(msg):
                return self.pending.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            msg = self._recv_message(deadline)
            if msg.type == SIGNAL:
                if match(msg):
                    return msg
                self.pending.append(msg)
