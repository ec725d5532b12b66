"""bin/ocirt's end: the command's process from its first line of ocirt to its _exit.

create, run and exec with a systemd-managed cgroup open the cgroup attach window
(ocirt/attach_window.py) before anything else of ocirt is imported: the kernel's grace period, which their first cgroup move waits for on
a cgroup v1 host, then starts as soon as Python code can run (~4 ms sooner than after the CLI's
imports and os), and more of it is over when the move comes. Then the command (cli.main), its
modules of ocirt found by this module's _Finder (without the path search), their code from the
command's bundle (_Bundle) where it is current; stdout and stderr are flushed, the bundle is
written anew if the command loaded a module it lacked, and the process ends with _exit:
sys.exit's exit status without the interpreter's teardown. No cyclic garbage collection on the
way (commands.without_gc). posix, sys and the interpreter's built-in modules only (see bin/ocirt,
"posix").
"""

import _imp
import gc
import marshal
import posix
import sys

# the commands that move a child into a cgroup (the first of them in argv is the command: a
# container named "run" after it costs nothing)
FORKING = frozenset({"create", "run", "exec"})

# the standard library's extension modules (not built into every interpreter) that commands
# load on their way: JSON (state.json, config.json, the output of state), setrlimit
STDLIB_EXTENSIONS = frozenset({"_json", "resource"})
# and the one of a package ocirt needs (the kernel's calls), looked for beside ocirt (a venv's
# site-packages) before the path search, which would list lib-dynload and site-packages
BESIDE_EXTENSIONS = frozenset({"_cffi_backend"})

# the commands that keep a bundle of their modules' code (_Bundle): those a container's life
# goes through; not the ones that print help or a document, nor the aliases
BUNDLED = frozenset(
    {
        "create",
        "start",
        "state",
        "kill",
        "delete",
        "run",
        "exec",
        "list",
        "ps",
        "pause",
        "resume",
        "update",
        "events",
    }
)
# modules that only the container's init loads (stages.load_init_code): a fork of the command
# that has the bundle open while it imports them, but whose loads the command never sees; so
# the command's bundle keeps them from their sources (_Bundle.save)
INIT_MODULES = ("ocirt.rootfs", "ocirt.waiter", "ocirt.hooks", "ocirt.console")
CHILD_MODULES = {"create": INIT_MODULES, "run": INIT_MODULES}
BUNDLE_FORMAT = 1
_BUNDLE_TAG = b"ocirt-bundle"

# importlib's own parts, loaded at startup: no import
_external = sys.modules["_frozen_importlib_external"]
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import SourceFileLoader as _Loader
else:
    _Loader = _external.SourceFileLoader
_ExtensionLoader = _external.ExtensionFileLoader
_ModuleSpec = type(sys.__spec__)
_Code = type(sys._getframe().f_code)  # (types.CodeType, without types)


class _BundledLoader(_Loader):
    """A module whose code comes from the bundle; all else (__file__, __cached__, get_source)
    as the source loader's, and so is its code wherever the bundle cannot give it."""

    def __init__(self, name: str, path: str, bundle: "_Bundle", entry: tuple):
        super().__init__(name, path)
        self.bundle = bundle
        self.entry = entry  # source (below the tree), mtime_ns, size, package, offset, length
        self.from_bundle = False  # its code came from the file (which may keep it, then)

    def get_code(self, fullname):
        data = self.bundle.code(self.entry)
        if data is not None:
            try:
                code = marshal.loads(data)
            except Exception:  # noqa: BLE001 - damaged: the source's way
                code = None
            # the module's own code (not another's, nor anything else a damaged file gives)
            if type(code) is _Code and code.co_filename.endswith(f"/{self.entry[0]}"):
                # its file names where it is now (a tree copied or moved whole), as importlib's
                _imp._fix_co_filename(code, self.path)  # type: ignore[attr-defined]
                self.from_bundle = True
                return code
            self.bundle.current = False  # written anew at the end, this module from its source
        return super().get_code(fullname)


class _Bundle:
    """The code of the ocirt modules one command loaded, in one file beside their cached
    bytecode (ocirt/__pycache__/launch-<command>.<cache tag>.bundle): its table is read when the
    command starts, and each module then costs a stat of its source and one read of its code,
    not the path finder's probes and the open, stats, seeks and reads of its pyc (~1.3 ms less
    for the ~40 modules of `run`, ~0.15 ms for `state`).

    An entry stands while its source's mtime (ns) and size are as recorded (a pyc's rule, finer);
    a module not in the file, or not current, loads as before, and at the end of the command
    the file is written anew (under another name, then renamed over it) with every ocirt module
    the command loaded and the file's other current entries, their code without docstrings
    (ocirt/bundle_writer.py). Where ocirt/__pycache__ is not writable (a read-only or another
    user's install) the file stays as it is, or absent, and modules load as before. The command: the
    first argument that names one of BUNDLED (a container named "state" in another command's
    place gives that command a file that does not fit it: its modules load as before).

    The file: b"ocirt-bundle", the format and the table's length (4 bytes each, little-endian),
    the table (marshal: the interpreter's magic number and, for each module, its source's path
    below the tree (ocirt/...: a tree copied or moved whole keeps its file), mtime, size,
    whether it is a package, and where its code is after the table), then each module's
    code (marshal). It stays open (close-on-exec) while the command runs: its code is read when
    a module is executed, never held in memory; a child that closed it (the init seals its fds)
    finds another file under the number, or none, and loads from the source's way."""

    def __init__(self, base: str, command: str):
        self.base = base
        self.package = f"{base}/ocirt/"
        self.dir = f"{self.package}__pycache__"
        self.path = f"{self.dir}/launch-{command}.{sys.implementation.cache_tag}.bundle"
        self.children = CHILD_MODULES.get(command, ())
        self.entries: dict = {}
        self.fd = -1
        self.identity = (0, 0)
        self.size = 0
        self.current = True  # every module loaded so far came from the file
        try:  # (O_NONBLOCK: a fifo in its place is not waited on, and is no file)
            fd = posix.open(self.path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK)
        except OSError:
            self.current = False
            return
        try:
            st = posix.fstat(fd)
            head_size = len(_BUNDLE_TAG) + 8
            if st.st_mode & 0o170000 != 0o100000:
                raise ValueError("not a file")
            head = posix.pread(fd, head_size, 0)
            form = int.from_bytes(head[-8:-4], "little")
            if head[: len(_BUNDLE_TAG)] != _BUNDLE_TAG or form != BUNDLE_FORMAT:
                raise ValueError("not a bundle of this format")
            table_size = int.from_bytes(head[-4:], "little")
            if table_size > st.st_size - head_size:
                raise ValueError("cut short")
            magic, table = marshal.loads(posix.pread(fd, table_size, head_size))
            if magic != _external.MAGIC_NUMBER or type(table) is not dict:
                raise ValueError("another interpreter's")
            self.entries, self.codes_at, self.size = table, head_size + table_size, st.st_size
            self.fd, self.identity, fd = fd, (st.st_dev, st.st_ino), -1
        except Exception:  # noqa: BLE001 - damaged, of another format or interpreter: written anew
            self.current = False
        finally:
            if fd >= 0:
                posix.close(fd)

    def spec(self, name: str):
        """The module's spec with the bundle's loader, or None (not in it, or not current)."""
        entry = self.current_entry(name)
        if entry is None:
            return None
        source, package = f"{self.base}/{entry[0]}", entry[3]
        spec = _ModuleSpec(name, _BundledLoader(name, source, self, entry), origin=source, is_package=package)
        spec.has_location = True
        if package:
            spec.submodule_search_locations = [source.rsplit("/", 1)[0]]
        return spec

    def code(self, entry: tuple) -> "bytes | None":
        """The marshalled code of an entry, or None if the file is no longer open here."""
        try:
            st = posix.fstat(self.fd)
            if (st.st_dev, st.st_ino) != self.identity:
                return None
            at, length = self.codes_at + entry[4], entry[5]
            if not (0 <= entry[4] and 0 <= length <= self.size - at):  # (damaged: no such read)
                raise ValueError("beyond the file")
            data = posix.pread(self.fd, length, at)
        except (OSError, TypeError, ValueError, OverflowError, LookupError):
            self.current = False
            return None
        if len(data) != entry[5]:  # a file cut short: written anew
            self.current = False
            return None
        return data

    def current_entry(self, name: str) -> "tuple | None":
        """The module's entry while its source is as recorded (mtime in ns and size), else None."""
        entry = self.entries.get(name)
        if entry is None:
            return None
        try:
            relative, mtime_ns, size, package = entry[:4]
            if type(package) is not bool or relative != name.replace(".", "/") + (
                "/__init__.py" if package else ".py"
            ):
                raise ValueError("another module's entry")  # (damaged)
            st = posix.stat(f"{self.base}/{relative}")
        except (OSError, TypeError, ValueError, LookupError):
            return None
        return entry if (st.st_mtime_ns, st.st_size) == (mtime_ns, size) else None

    def save(self) -> None:
        """Write the file anew if a module came from elsewhere; never fails the command. It
        holds this run's modules and the file's other entries that are still current: a
        command whose runs load other modules (a terminal, hooks, an error) gathers them all
        instead of writing the file again at each change of path."""
        # (the init's modules by name only while nothing else changed: no stat on every create;
        # one whose source alone changed loads from it, and joins anew at the next writing)
        if (self.current and all(name in self.entries for name in self.children)) or not posix.access(
            self.dir, posix.W_OK
        ):
            return
        from .bundle_writer import write  # (its own module: ~11 kB of code no other run loads)

        write(self)


class _Finder:
    """ocirt's own modules (ocirt.*, below the directory `base`) found without the path
    finder's search (its directory listings and probes: ~20-30 us less a module, ~0.3-1 ms a
    command), and loaded by importlib's own source loader (cached bytecode where current).
    Only a package directory or a .py file; anything else (an extension module, say) is the
    next finder's, as before. Likewise the standard library's extension modules the commands
    load (STDLIB_EXTENSIONS), from the interpreter's lib-dynload directory when they are there
    (the path search would list that directory, and probe the standard library's, first), and
    _cffi_backend from the directory ocirt is in, when it is there and that directory is the
    last place the path search would look (bin/ocirt's common case)."""

    def __init__(self, base: str, bundle: "_Bundle | None" = None):
        self.base = base
        self.bundle = bundle
        self.dynload = next((p for p in sys.path if p.endswith("/lib-dynload")), None)
        # bin/ocirt's common case: `base` is the last of sys.path, and `site` added none after
        # it; only then is what lies beside ocirt what the path search would find
        self.beside = bool(sys.path) and sys.path[-1] == base and "site" not in sys.modules

    def find_spec(self, name, path=None, target=None):
        if not name.startswith("ocirt."):
            if name in STDLIB_EXTENSIONS and self.dynload is not None:
                return self.extension_spec(name, self.dynload)
            if name in BESIDE_EXTENSIONS and self.beside:
                return self.extension_spec(name, self.base)
            return None
        if self.bundle is not None:
            spec = self.bundle.spec(name)
            if spec is not None:
                return spec
        d = f"{self.base}/{name.replace('.', '/')}"
        for source, package in ((f"{d}/__init__.py", True), (f"{d}.py", False)):
            if posix.access(source, posix.F_OK):
                if self.bundle is not None:
                    self.bundle.current = False
                spec = _ModuleSpec(name, _Loader(name, source), origin=source, is_package=package)
                spec.has_location = True  # __file__ is the source (and __cached__ its pyc)
                if package:
                    spec.submodule_search_locations = [d]
                return spec
        return None

    def extension_spec(self, name: str, directory: str):
        if name in sys.builtin_module_names:  # built into this interpreter: the next finder's
            return None
        for suffix in _imp.extension_suffixes():
            path = f"{directory}/{name}{suffix}"
            if posix.access(path, posix.F_OK):
                spec = _ModuleSpec(name, _ExtensionLoader(name, path), origin=path)
                spec.has_location = True
                return spec
        return None


def fast_imports(bundle: bool = False) -> "_Bundle | None":
    """_Finder first, for the rest of the command; with `bundle`, the code of its modules from
    the command's bundle (returned, to be saved at the end), if the command is one of BUNDLED."""
    base = __file__.rsplit("/", 2)[0]
    command = None
    if bundle and sys.implementation.cache_tag is not None and not sys.dont_write_bytecode:
        command = next((a for a in sys.argv[1:] if a in BUNDLED), None)
    found = _Bundle(base, command) if command is not None else None
    sys.meta_path.insert(0, _Finder(base, found))
    return found


def launch() -> None:
    # (a ^C outside cli.main, which ends the command with 130 itself: bin/ocirt's, the same)
    # The command without the cyclic collector from here (commands.without_gc says why), not
    # only from cli.main: the command line's own imports set off a collection (~0.07 ms).
    gc.disable()
    stdio()
    bundle = fast_imports(bundle=True)
    window = None
    command = next((a for a in sys.argv[1:] if a in FORKING), None)
    systemd = any(a.startswith("--systemd-cgroup") for a in sys.argv[1:])
    if command is not None and systemd:  # (cli.Globals.attach_window's rule, before its imports)
        from .attach_window import start

        window = start()
    from .cli import main

    try:
        rc = exit_code(main(window=window))
    except SystemExit as e:
        rc = exit_code(e.code)
    rc = flush(rc)
    if bundle is not None:
        try:  # (the command is done: a cache that cannot be written is no error of its)
            bundle.save()
        except BaseException:  # noqa: BLE001 - a MemoryError under a caller's RLIMIT_AS, a ^C
            pass
    posix._exit(rc)


def stdio() -> None:
    """A closed fd 0, 1 or 2 becomes /dev/null before anything is opened (three fstat calls):
    else the first file opened lands there (the command's bundle, a state directory's lock)
    and is what a container or a hook gets as that stream, or what the command prints into.
    sys.stdin, sys.stdout or sys.stderr, None when Python started without the fd, then write
    to /dev/null (runc, started so, prints into nothing) rather than fail."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            posix.fstat(fd)
        except OSError:
            null = posix.open("/dev/null", posix.O_RDWR)  # the lowest free fd: this one
            if null != fd:  # (not reached: a lower one is open)
                posix.dup2(null, fd)
                posix.close(null)
            posix.set_inheritable(fd, True)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))


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
    """What stdout and stderr still hold, written; where stdout cannot take it (a full device,
    a reader gone: `ocirt --version >/dev/full`), the command fails with one line saying so,
    in Go's words as the commands that print through commands.state.write_stdout (the
    interpreter would end with 120 and no word)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception as e:  # noqa: BLE001 - a closed or broken stream
            rc = rc or 1
            if stream is sys.stdout:
                reason = posix.strerror(e.errno).lower() if isinstance(e, OSError) and e.errno else str(e)
                try:
                    posix.write(
                        2, f'time="{_now()}" level=error msg="write /dev/stdout: {reason}"\n'.encode()
                    )
                except OSError:
                    pass
    return rc


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
