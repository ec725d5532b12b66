"""bin/ocirt's end: the command's process from its first line of ocirt to its _exit.

create, run and exec open the cgroup attach window (ocirt/attach_window.py) before anything
else of ocirt is imported: the kernel's grace period, which their first cgroup move waits for on
a cgroup v1 host, then starts as soon as Python code can run (~4 ms sooner than after the CLI's
imports and os), and more of it is over when the move comes. Then the command (cli.main); stdout
and stderr are flushed and the process ends with _exit: sys.exit's exit status without the
interpreter's teardown. posix and sys only (see bin/ocirt, "posix").
"""

import posix
import sys

# the commands that move a child into a cgroup (a false hit, a container named "run", costs nothing)
FORKING = frozenset({"create", "run", "exec"})


def launch() -> None:
    window = None
    if FORKING.intersection(sys.argv[1:]):
        from . import attach_window

        # with cgroupfs, their first child is born in its cgroup on cgroup v2 (attach_window.start)
        systemd = any(a.startswith("--systemd-cgroup") for a in sys.argv[1:])
        window = attach_window.start(births=not systemd)
    from .cli import main

    try:
        rc = exit_code(main(window=window))
    except SystemExit as e:
        rc = exit_code(e.code)
    posix._exit(flush(rc))


def exit_code(code) -> int:
    """sys.exit's rules: None is 0, an int is itself, anything else is printed and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(f"{code}\n")
    except Exception:  # noqa: BLE001
        pass
    return 1


def flush(rc: int) -> int:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stdout: as the interpreter, 120
            rc = rc or 120
    return rc
