"""A command's bundle written anew (ocirt/launch.py's _Bundle says what it is and when): the
code of the ocirt modules the command loaded, each compiled lean (lean_code). Its own module,
loaded only by a command that writes the file: every command loads ocirt/launch.py, and this
code is ~11 kB of it that almost no run calls."""

import _signal
import marshal
import posix
import sys

from . import launch
from .signals import STOP_SIGNALS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_Loader = launch._Loader
_external = launch._external


def write(bundle: "launch._Bundle") -> None:
    """The file anew (under another name, then renamed over it): this run's ocirt modules and
    the file's other entries that are still current, the init's modules (bundle.children) from
    their sources if the command never loaded them. Never fails the command: a file that cannot
    be written is left as it was."""
    missing = [name for name in bundle.children if bundle.current_entry(name) is None]
    tmp = f"{bundle.path}.{posix.getpid()}"
    # a ^C or a kill while the file is written comes once it is renamed or gone (a SIGKILL
    # leaves it, as it leaves a pyc's)
    mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        table: dict = {}
        codes: list[bytes] = []
        at = 0  # where the next code goes, after the table

        def add(name: str, where: tuple, code: bytes) -> None:
            nonlocal at
            table[name] = (*where, at, len(code))
            codes.append(code)
            at += len(code)

        def from_source(path: str, package: bool) -> tuple[tuple, bytes]:
            st = posix.stat(path)
            where = (path[len(bundle.base) + 1 :], st.st_mtime_ns, st.st_size, package)
            return where, marshal.dumps(lean_code(_Loader("", path).get_data(path), path))

        for name, module in list(sys.modules.items()):
            if not name.startswith("ocirt.") or name in ("ocirt.launch", "ocirt.bundle_writer"):
                continue
            spec: Any = getattr(module, "__spec__", None)
            loader: Any = getattr(spec, "loader", None)
            code = None
            if type(loader) is launch._BundledLoader:
                if loader.from_bundle:  # (else its entry is damaged: from the source, below)
                    where, code = loader.entry[:4], bundle.code(loader.entry)
            elif type(loader) is not _Loader or not loader.path.startswith(bundle.package):
                continue  # not one of this tree's modules (nor an extension module)
            if code is None:
                where, code = from_source(loader.path, spec.submodule_search_locations is not None)
            add(name, where, code)
        for name in missing:
            if name not in table:
                try:
                    add(name, *from_source(f"{bundle.package}{name[len('ocirt.') :]}.py", False))
                except OSError:  # (not in this tree: left to the source's way)
                    pass
        for name in bundle.entries:
            entry = None if name in table else bundle.current_entry(name)
            code = None if entry is None else bundle.code(entry)
            if entry is not None and code is not None:
                add(name, entry[:4], code)
        table_bytes = marshal.dumps((_external.MAGIC_NUMBER, table))
        head = (
            launch._BUNDLE_TAG
            + launch.BUNDLE_FORMAT.to_bytes(4, "little")
            + len(table_bytes).to_bytes(4, "little")
        )
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o644)
        try:
            for chunk in (head, table_bytes, *codes):
                view = memoryview(chunk)
                while view:
                    done = posix.write(fd, view)
                    if not done:  # (never for a file; no loop for ever should it be)
                        raise OSError(5, "no progress")
                    view = view[done:]
        finally:
            posix.close(fd)
        posix.rename(tmp, bundle.path)
    except BaseException:  # noqa: BLE001 - a cache: the command's result stands without it
        try:
            posix.unlink(tmp)
        except BaseException:  # noqa: BLE001 - (a MemoryError as well)
            pass
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)


# `from __future__ import annotations`: a compiler flag, and at run time an import of the
# __future__ module (~0.15 ms, for the name `annotations` in the module, which ocirt never uses)
_FUTURE_LINE = b"from __future__ import annotations\n"
_FUTURE_ANNOTATIONS = 0x1000000  # __future__.annotations.compiler_flag


def lean_code(source: bytes, path: str):
    """A module's code as the bundle keeps it: compiled as `python -OO` compiles it, without
    the docstrings of the module, its classes and functions, which every process that runs
    the code would otherwise hold (~90 kB less in create and in the waiting init), and with
    `from __future__ import annotations` as the compiler's flag alone: the line is blanked
    (line numbers stay) and the __future__ module is not imported. Nothing in ocirt reads a
    __doc__ or that name, and ocirt has no assert statement, which -OO would drop
    (tests/unit/test_layering.py says so); the library's imports are as Python makes them.
    The compiler only: no import on the way (`ast` would load os)."""
    flags = 0
    at = (b"\n" + source).find(b"\n" + _FUTURE_LINE)  # where the line starts, if it is there
    if at >= 0:
        source = source[:at] + b"\n" + source[at + len(_FUTURE_LINE) :]
        flags = _FUTURE_ANNOTATIONS
    return line_numbers_only(compile(source, path, "exec", flags=flags, dont_inherit=True, optimize=2))


def line_numbers_only(code):
    """The code (and the code in its constants) with a location table of line numbers alone, as
    `python -X no_debug_ranges` compiles it: a traceback still names each line, without the
    ^^^ under the expression (ocirt's commands print one line, never a traceback). The tables
    are a third of a module's code, and the columns most of them: create's bundle ~8% smaller,
    its peak RSS ~40 KiB lower. The format is CPython's (Objects/locations.md, 3.11 to 3.13):
    entries of 1-8 code units, each a byte (bit 7 set, the kind in bits 3-6, the units - 1 in
    bits 0-2) and the kind's varints or bytes; kind 13 is a line delta alone, 15 no location.
    The code stays as it was if its lines would not (another format)."""
    consts = tuple(line_numbers_only(c) if type(c) is type(code) else c for c in code.co_consts)
    table, out, at = code.co_linetable, bytearray(), 0
    try:
        while at < len(table):
            head = table[at]
            kind, at = (head >> 3) & 15, at + 1
            if kind == 15:
                out.append(head)
                continue
            if kind < 10:  # short: the same line, a byte of columns
                delta, at = 0, at + 1
            elif kind < 13:  # one line: the delta in the kind, two bytes of columns
                delta, at = kind - 10, at + 2
            else:  # 13: the delta alone; 14: the delta, the end line's, two columns
                value, at = _varint(table, at)
                delta = -(value >> 1) if value & 1 else value >> 1
                for _ in range(3 if kind == 14 else 0):
                    at = _varint(table, at)[1]
            out.append(0x80 | 13 << 3 | (head & 7))
            value = (-delta) << 1 | 1 if delta < 0 else delta << 1
            while value >= 64:
                out.append(64 | value & 63)
                value >>= 6
            out.append(value)
        lean = code.replace(co_linetable=bytes(out), co_consts=consts)
        if at != len(table) or list(lean.co_lines()) != list(code.co_lines()):
            raise ValueError("not the same lines")
    except (IndexError, ValueError):  # (another format: the code as compiled)
        return code.replace(co_consts=consts)
    return lean


def _varint(table: bytes, at: int) -> tuple[int, int]:
    """A location table's unsigned varint at `at` (6 bits a byte, bit 6: more follow): its
    value and where the next item starts."""
    value = shift = 0
    while True:
        byte = table[at]
        at += 1
        value |= (byte & 63) << shift
        shift += 6
        if not byte & 64:
            return value, at
