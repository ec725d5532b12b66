"""Talking to CRIU as a library does: its RPC protocol (criu/rpc.proto) over a SOCK_SEQPACKET
pair with `criu swrk <fd>`, one request and its notifications per process.

The few messages ocirt sends and reads are encoded here by hand (protobuf's wire format is
varints and length-prefixed fields), so neither protobuf nor pycriu is needed: only checkpoint
and restore import this module.

    with Swrk(criu_path) as s:            # starts `criu swrk`
        s.pid                             # its pid (restore puts it into the container's cgroup)
        resp = s.call({"type": DUMP, "opts": {...}}, on_notify)
"""

from __future__ import annotations

import os
import socket
import subprocess

from .errors import OcirtError, errno_text

# criu_req_type
EMPTY, DUMP, RESTORE, CHECK, PRE_DUMP, PAGE_SERVER, NOTIFY = 0, 1, 2, 3, 4, 5, 6
FEATURE_CHECK, VERSION = 9, 10
TYPE_NAMES = {
    DUMP: "DUMP",
    RESTORE: "RESTORE",
    CHECK: "CHECK",
    PRE_DUMP: "PRE_DUMP",
    NOTIFY: "NOTIFY",
    FEATURE_CHECK: "FEATURE_CHECK",
    VERSION: "VERSION",
}
# criu_cg_mode, by runc's --manage-cgroups-mode names
CG_MODES = {"ignore": 0, "none": 1, "props": 2, "soft": 3, "full": 4, "strict": 5}

# message -> field -> (number, type, repeated); a type is a scalar kind or another message
_I, _U, _B, _S = "int", "uint", "bool", "string"
SCHEMA: dict[str, dict[str, tuple]] = {
    "criu_page_server_info": {"address": (1, _S), "port": (2, _I), "pid": (3, _I), "fd": (4, _I)},
    "ext_mount_map": {"key": (1, _S), "val": (2, _S)},
    "join_namespace": {"ns": (1, _S), "ns_file": (2, _S), "extra_opt": (3, _S)},
    "inherit_fd": {"key": (1, _S), "fd": (2, _I)},
    "cgroup_root": {"ctrl": (1, _S), "path": (2, _S)},
    "criu_opts": {
        "images_dir_fd": (1, _I),
        "pid": (2, _I),
        "leave_running": (3, _B),
        "ext_unix_sk": (4, _B),
        "tcp_established": (5, _B),
        "evasive_devices": (6, _B),
        "shell_job": (7, _B),
        "file_locks": (8, _B),
        "log_level": (9, _I),
        "log_file": (10, _S),
        "ps": (11, "criu_page_server_info"),
        "notify_scripts": (12, _B),
        "root": (13, _S),
        "parent_img": (14, _S),
        "track_mem": (15, _B),
        "auto_dedup": (16, _B),
        "work_dir_fd": (17, _I),
        "link_remap": (18, _B),
        "ext_mnt": (23, "ext_mount_map", True),
        "manage_cgroups": (24, _B),
        "cg_root": (25, "cgroup_root", True),
        "rst_sibling": (26, _B),
        "inherit_fd": (27, "inherit_fd", True),
        "skip_mnt": (31, _S, True),
        "manage_cgroups_mode": (34, _U),
        "external": (37, _S, True),
        "empty_ns": (38, _U),
        "join_ns": (39, "join_namespace", True),
        "freeze_cgroup": (44, _S),
        "lazy_pages": (48, _B),
        "status_fd": (49, _I),
        "orphan_pts_master": (50, _B),
        "config_file": (51, _S),
        "lsm_profile": (53, _S),
        "lsm_mount_context": (63, _S),
    },
    "criu_features": {"mem_track": (1, _B), "lazy_pages": (2, _B), "pidfd_store": (3, _B)},
    "criu_req": {
        "type": (1, _U),
        "opts": (2, "criu_opts"),
        "notify_success": (3, _B),
        "keep_open": (4, _B),
        "features": (5, "criu_features"),
        "pid": (6, _U),
    },
    "criu_dump_resp": {"restored": (1, _B)},
    "criu_restore_resp": {"pid": (1, _I)},
    "criu_notify": {"script": (1, _S), "pid": (2, _I)},
    "criu_version": {
        "major_number": (1, _I),
        "minor_number": (2, _I),
        "gitid": (3, _S),
        "sublevel": (4, _I),
        "extra": (5, _I),
        "name": (6, _S),
    },
    "criu_resp": {
        "type": (1, _U),
        "success": (2, _B),
        "dump": (3, "criu_dump_resp"),
        "restore": (4, "criu_restore_resp"),
        "notify": (5, "criu_notify"),
        "ps": (6, "criu_page_server_info"),
        "cr_errno": (7, _I),
        "features": (8, "criu_features"),
        "cr_errmsg": (9, _S),
        "version": (10, "criu_version"),
        "status": (11, _I),
    },
}


# -- the wire format --------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32: ten bytes of two's complement, as protobuf does
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(message: str, values: dict) -> bytes:
    """`values` (field name -> value; a list for a repeated field) as `message`'s bytes."""
    fields = SCHEMA[message]
    out = bytearray()
    for name, value in values.items():
        if value is None:
            continue
        number, kind, *rep = fields[name]
        for v in value if rep else [value]:
            if kind in (_I, _U, _B):
                out += _varint(number << 3) + _varint(int(v))
            else:
                data = v.encode() if kind == _S else encode(kind, v)
                out += _varint(number << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def decode(message: str, data: bytes) -> dict:
    """`message`'s bytes as a dict of the fields it knows (unknown fields are skipped)."""
    by_number = {f[0]: (name, f[1], len(f) > 2) for name, f in SCHEMA[message].items()}
    out: dict = {}
    i = 0
    raw: int | bytes
    value: object
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            raw, i = _read_varint(data, i)
        elif wire == 2:
            length, i = _read_varint(data, i)
            raw, i = data[i : i + length], i + length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            raw, i = data[i : i + width], i + width
        else:
            raise OcirtError(f"criu: cannot parse its answer (wire type {wire})")
        if number not in by_number:
            continue
        name, kind, repeated = by_number[number]
        if kind in (_I, _U, _B) and not isinstance(raw, int):
            raw = int.from_bytes(raw, "little")  # a fixed-width field
        if isinstance(raw, int):
            if kind == _I:
                num = raw - (1 << 64) if raw >= 1 << 63 else raw
                value = num - (1 << 32) if num >= 1 << 31 else num
            elif kind == _B:
                value = bool(raw)
            else:
                value = raw
        elif kind == _S:
            value = bytes(raw).decode(errors="replace")
        else:
            value = decode(kind, bytes(raw))
        if repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


# -- the swrk process --------------------------------------------------------------------------------


class CriuError(OcirtError):
    """CRIU said no (or died): the request type, CRIU's errno and message."""

    def __init__(self, message: str, errno: int | None = 0, cr_errmsg: str = ""):
        super().__init__(message, errno=errno or None)
        self.cr_errmsg = cr_errmsg


class Swrk:
    """One `criu swrk` process and our end of its socket. Our stdio and `pass_fds` are inherited
    by it at the same numbers (restore's inherit_fd names them)."""

    def __init__(self, criu_path: str = "criu", pass_fds: tuple = (), stdio_null: bool = False):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        null = subprocess.DEVNULL if stdio_null else None
        try:
            self.proc = subprocess.Popen(
                [criu_path, "swrk", str(theirs.fileno())],
                pass_fds=(theirs.fileno(), *pass_fds),
                stdin=null,
                stdout=null,
                stderr=null,
            )
        except OSError as e:
            ours.close()
            raise OcirtError(
                f"cannot run criu ({criu_path}): {errno_text(e)} (install criu, or give its path with --criu)"
            ) from None
        finally:
            theirs.close()
        self.sock = ours
        self.pid = self.proc.pid

    def call(self, req: dict, on_notify=None) -> dict:
        """Send `req`; answer CRIU's notifications with on_notify(script, pid, fds) (a raise
        aborts CRIU's work); the final response, or CriuError."""
        kind = TYPE_NAMES.get(req.get("type", -1), str(req.get("type")))
        self._send(req)
        while True:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16))
            except OSError as e:
                raise CriuError(f"criu {kind}", e.errno) from None  # (its errno's words follow)
            fds = _fds_of(anc)
            if not data:
                raise CriuError(f"criu {kind}: criu exited without an answer")
            resp = decode("criu_resp", data)
            if not resp.get("success"):
                for fd in fds:
                    os.close(fd)
                errno_ = resp.get("cr_errno", 0)
                raise CriuError(
                    f"criu {kind} failed" + (f" (errno {errno_})" if errno_ else ""),
                    errno_,
                    resp.get("cr_errmsg", ""),
                )
            if resp.get("type") != NOTIFY:
                for fd in fds:
                    os.close(fd)
                return resp
            notify = resp.get("notify") or {}
            try:
                if on_notify is not None:
                    on_notify(notify.get("script", ""), notify.get("pid", 0), fds)
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._send({"type": NOTIFY, "notify_success": True})

    def _send(self, req: dict) -> None:
        try:
            self.sock.send(encode("criu_req", req))
        except OSError as e:
            raise CriuError("criu: cannot send the request", e.errno) from None

    def close(self, kill: bool = False) -> int:
        """Close our end and wait for criu; its exit status."""
        self.sock.close()
        if kill and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        return self.proc.wait()

    def __enter__(self) -> Swrk:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(kill=exc_type is not None)


def _fds_of(ancillary) -> list:
    fds: list = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds += [int.from_bytes(data[i : i + 4], "little", signed=True) for i in range(0, usable, 4)]
    return fds


def request(
    criu_path: str, req: dict, on_notify=None, pass_fds: tuple = (), started=None, stdio_null: bool = True
) -> dict:
    """One request on a fresh `criu swrk`; `started(pid)` runs before the request is sent.
    CRIU's stdio is /dev/null unless stdio_null is False (restore: ours, for inherit_fd)."""
    with Swrk(criu_path, pass_fds, stdio_null) as s:
        if started is not None:
            started(s.pid)
        resp = s.call(req, on_notify)
    return resp


def version(criu_path: str) -> tuple[int, int, int]:
    v = request(criu_path, {"type": VERSION}).get("version") or {}
    return v.get("major_number", 0), v.get("minor_number", 0), v.get("sublevel", 0)


def host_passes_check(criu_path: str) -> bool:
    """Whether CRIU's own check of this kernel (`criu check`) passes; only asked to explain a
    failure (the RPC CHECK request is stricter than the command: it fails on a missing tun)."""
    try:
        return (
            subprocess.run(
                [criu_path, "check"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def features(criu_path: str, wanted: dict) -> dict:
    """Which of `wanted` (criu_features names) CRIU supports here."""
    return request(criu_path, {"type": FEATURE_CHECK, "features": wanted}).get("features") or {}


def log_error_line(log_path: str) -> str:
    """The first line of CRIU's log that reports an error (the reason, usually), trimmed."""
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                if "Error (" in line or line.startswith("Error"):
                    text = line.strip()
                    # "(00.012345) Error (criu/cr-dump.c:123): what" -> "what"
                    tail = text.split("):", 1)[-1].strip() if "Error (" in text else text
                    return tail or text
    except OSError:
        pass
    return ""
