"""bin/ocirt's end: the command's process from its first line of ocirt to its _exit.

create, run and exec open the cgroup attach window (ocirt/attach_window.py) before anything
else of ocirt is imported: the kernel's grace period, which their first cgroup move waits for on
a cgroup v1 host, then starts as soon as Python code can run (~4 ms sooner than after the CLI's
imports and os), and more of it is over when the move comes. Then the command (cli.main), its
modules of ocirt found by this module's _Finder (without the path search); stdout and stderr
are flushed and the process ends with _exit: sys.exit's exit status without the interpreter's
teardown. posix and sys only (see bin/ocirt, "posix").
"""

import posix
import sys

# the commands that move a child into a cgroup (a false hit, a container named "run", costs nothing)
FORKING = frozenset({"create", "run", "exec"})

# importlib's own parts, loaded at startup: no import
_Loader = sys.modules["_frozen_importlib_external"].SourceFileLoader
_ModuleSpec = type(sys.__spec__)


class _Finder:
    """ocirt's own modules (ocirt.*, below the directory `base`) found without the path
    finder's search (its directory listings and probes: ~20-30 us less a module, ~0.3-1 ms a
    command), and loaded by importlib's own source loader (cached bytecode where current).
    Only a package directory or a .py file; anything else (an extension module, say) is the
    next finder's, as before."""

    def __init__(self, base: str):
        self.base = base

    def find_spec(self, name, path=None, target=None):
        if not name.startswith("ocirt."):
            return None
        d = f"{self.base}/{name.replace('.', '/')}"
        for source, package in ((f"{d}/__init__.py", True), (f"{d}.py", False)):
            if posix.access(source, posix.F_OK):
                spec = _ModuleSpec(name, _Loader(name, source), origin=source, is_package=package)
                spec.has_location = True  # __file__ is the source (and __cached__ its pyc)
                if package:
                    spec.submodule_search_locations = [d]
                return spec
        return None


def fast_imports() -> None:
    """_Finder first, for the rest of the command."""
    sys.meta_path.insert(0, _Finder(__file__.rsplit("/", 2)[0]))


def launch() -> None:
    fast_imports()
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
