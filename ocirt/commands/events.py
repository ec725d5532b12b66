"""`events [--stats] [--interval 5s] <id>`: runc's event stream (ocirt/events.py), one JSON
object a line.

--stats prints one stats event and exits. Otherwise a stats event every --interval, and an oom
event whenever the OOM counter of the memory cgroup grows, until the container stops or is
deleted.
"""

from __future__ import annotations

import errno
import gc
import json
import re

from ..cli import Opt, UsageError, exact_id
from ..container import OpenContainer
from ..errors import OcirtError
from ..events import runc_stats, stats_event, watch, watched_cgroup  # noqa: F401 - runc_stats re-exported
from .state import write_stdout

USAGE = "events [command options] <container-id>"
OPTIONS = (
    Opt("interval", value=True, default="5s", help="set the stats collection interval"),
    Opt("stats", help="display the container's stats then exit"),
)

# -- Go's time.ParseDuration ------------------------------------------------------------------------

_UNITS = {  # nanoseconds
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"([0-9]*)(?:(\.)([0-9]*))?([^0-9.]*)")
_MAX_NS = (1 << 63) - 1  # a Go Duration is an int64 of nanoseconds


def parse_duration(text: str) -> float:
    """'1h2m3.5s', '100ms', '-5s', '0' -> seconds; ValueError otherwise (Go's grammar, and its
    range: more than an int64 of nanoseconds, about 292 years, is refused as Go refuses it)."""
    s = text
    negative = s[:1] == "-"
    if s[:1] in ("-", "+"):
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(text)
    total, pos = 0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(text)
        whole, _dot, frac, unit = m.groups()
        if not (whole or frac) or unit not in _UNITS:
            raise ValueError(text)
        ns = int(whole or "0") * _UNITS[unit]
        if frac:  # as Go: the fraction's first digits scaled in floating point, truncated
            frac = frac[:18]
            ns += int(int(frac) * (_UNITS[unit] / 10 ** len(frac)))
        total += ns
        if total > _MAX_NS + negative:
            raise ValueError(text)
        pos = m.end()
    return (-total if negative else total) / 1e9


def emit(event: dict) -> None:
    write_stdout(json.dumps(event, separators=(",", ":")) + "\n")


# -- main ------------------------------------------------------------------------------------------


def main(g, o, args) -> int:
    gc.enable()  # cli.main turned it off for the command (ocirt/commands/__init__.py)
    try:
        interval = parse_duration(o["interval"])
    except ValueError:
        raise UsageError(f'invalid value "{o["interval"]}" for flag -interval: parse error') from None
    container_id = exact_id(args, "events")
    c = OpenContainer.open(g.root, container_id, lock=False)
    if interval <= 0:
        raise OcirtError("duration interval must be greater than 0")
    cg = watched_cgroup(c)
    try:
        if o["stats"]:
            emit(stats_event(c, cg))
            return 0
        for event in watch(c, cg, interval, on_error=lambda e: g.log.error(str(e))):
            emit(event)
    except OcirtError as e:
        # The reader of the stream went away (`ocirt events ID | head -1`): it stops quietly
        # (write_stdout kept the last flush from failing again). Any other failure to write
        # (a full device), or a reader gone before the one event of --stats, is the error.
        if e.errno != errno.EPIPE or o["stats"]:
            raise
    return 0
