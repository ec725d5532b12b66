"""`events [--stats] [--interval 5s] <id>`: runc's event stream (ocirt/events.py), one JSON
object a line.

--stats prints one stats event and exits. Otherwise a stats event every --interval, and an oom
event whenever the OOM counter of the memory cgroup grows, until the container stops or is
deleted.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys

from ..cli import Opt, UsageError, exact_id
from ..container import OpenContainer
from ..errors import OcirtError
from ..events import runc_stats, stats_event, watch, watched_cgroup  # noqa: F401 - runc_stats re-exported

USAGE = "events [command options] <container-id>"
OPTIONS = (
    Opt("interval", value=True, default="5s", help="set the stats collection interval"),
    Opt("stats", help="display the container's stats then exit"),
)

# -- Go's time.ParseDuration ------------------------------------------------------------------------

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def parse_duration(text: str) -> float:
    """'1h2m3.5s', '100ms', '-5s', '0' -> seconds; ValueError otherwise (Go's grammar)."""
    s = text
    sign = 1.0
    if s[:1] in ("-", "+"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(text)
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(text)
        number, unit = m.group(1), m.group(2)
        if number in ("", ".") or not unit:
            raise ValueError(text)
        if unit not in _UNITS:
            raise ValueError(text)
        total += float(number) * _UNITS[unit]
        pos = m.end()
    return sign * total


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


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
    except BrokenPipeError:
        # The reader went away (`ocirt events ID | head -1`): stop quietly, and keep the
        # interpreter's final flush from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0
