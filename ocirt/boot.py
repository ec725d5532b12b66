"""bin/ocirt's own code: where ocirt is, then the command (ocirt/launch.py). bin/ocirt runs this
file's code in its own namespace (its __file__ and _FIND_OCIRT), from the cached bytecode, when
the interpreter's site-packages has it (a venv's, where pip put ocirt: the common case).

Why not in bin/ocirt: Python compiles a script on every run, and the memory its parser takes
for that stays with the process: ~4-5 KiB a line of code, ~0.15 MiB for the ~30 lines that
stood there, in the peak RSS of every command (create's 10.84 -> 10.69 MiB, state's 9.16 ->
8.94, medians of 16, alternating). A module's code comes from its pyc, not the parser.

posix, sys and the interpreter's built-in modules only (bin/ocirt's rule, "posix" there)."""

import posix
import sys


def main(script: str, namespace: dict) -> None:
    """The common case: this is a venv's own bin/ocirt (beside its python3, not a link), ocirt
    is installed in its site-packages, the venv does not see the system's packages (nothing in
    its pyvenv.cfg is true), -I -S and no PYTHONPATH: that site-packages goes on sys.path and
    ocirt and ocirt.launch load straight from their files (through sys.path they would cost a
    listing of lib-dynload, site-packages and ocirt/, ~0.25 ms). Anything else is the script's
    _FIND_OCIRT's (run in its namespace). Then the command, to its _exit."""
    venv = sys.executable.rsplit("/", 2)[0]
    where = venv + "/lib/python%d.%d/site-packages" % sys.version_info[:2]
    try:
        with open(venv + "/pyvenv.cfg", "rb") as f:
            shared = b"true" in f.read().lower()
    except OSError:  # not a venv, or not readable: _FIND_OCIRT's (it reads it as it can)
        shared = True
    if (
        shared
        or not (sys.flags.isolated and sys.flags.no_site)
        or script.rsplit("/", 2)[0] != venv
        or posix.lstat(script).st_mode & 0o170000 == 0o120000
        or b"PYTHONPATH" in posix.environ
        or not posix.access(where + "/ocirt/__init__.py", 0)
    ):
        exec(namespace["_FIND_OCIRT"], namespace)
    else:
        sys.path.append(where)
        bootstrap, external = sys.modules["_frozen_importlib"], sys.modules["_frozen_importlib_external"]
        for name, file in (("ocirt", "/ocirt/__init__.py"), ("ocirt.launch", "/ocirt/launch.py")):
            spec = external.spec_from_file_location(name, where + file)
            sys.modules[name] = module = bootstrap.module_from_spec(spec)
            spec.loader.exec_module(module)
        vars(sys.modules["ocirt"])["launch"] = module  # (as the import system sets it)
    from ocirt.launch import launch

    launch()


if __name__ == "__main__" and "_FIND_OCIRT" in globals():  # in bin/ocirt's namespace
    main(__file__, globals())
