"""ocirt/launch.py's finder: ocirt's modules found without the path search and loaded as importlib
loads them (their cached bytecode where it is current, else compiled), with the same module
attributes as importlib's own finder gives."""

import importlib.machinery
import importlib.util
import marshal
import os
import signal
import subprocess
import sys

import pytest

from ocirt import bundle_writer, launch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tree(tmp_path, source: str, name: str = "mod"):
    """<tmp>/ocirt/<name>.py holding `source`; the finder for <tmp>."""
    pkg = tmp_path / "ocirt"
    pkg.mkdir(exist_ok=True)
    path = pkg / f"{name}.py"
    path.write_text(source)
    return launch._Finder(str(tmp_path)), path


def _pyc_of(path) -> str:
    return importlib.util.cache_from_source(str(path))


def _write_pyc(path, code_source: str, like=None) -> None:
    """A timestamp pyc for `path` whose header records the stat of `like` (default: `path`)
    and whose code is `code_source` compiled."""
    st = os.stat(like or path)
    header = importlib.util.MAGIC_NUMBER + bytes(4)
    header += (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (st.st_size & 0xFFFFFFFF).to_bytes(
        4, "little"
    )
    os.makedirs(os.path.dirname(_pyc_of(path)), exist_ok=True)
    with open(_pyc_of(path), "wb") as f:
        f.write(header + marshal.dumps(compile(code_source, str(path), "exec")))


def _load(finder, name: str):
    spec = finder.find_spec(name)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_current_bytecode_is_what_runs(tmp_path):
    """A pyc whose header matches the source's mtime and size is loaded without reading the
    source: here its code differs from the source's (same length), and its code is what runs."""
    finder, path = _tree(tmp_path, "X = 1\n")
    _write_pyc(path, "X = 2\n")
    assert _load(finder, "ocirt.mod").X == 2


def test_stale_bytecode_is_compiled_anew(tmp_path):
    """A pyc recorded for another mtime: the source is compiled (and the pyc written anew)."""
    finder, path = _tree(tmp_path, "X = 1\n")
    _write_pyc(path, "X = 2\n")
    st = os.stat(path)
    os.utime(path, (st.st_atime, st.st_mtime + 10))
    assert _load(finder, "ocirt.mod").X == 1
    assert _load(finder, "ocirt.mod").X == 1  # the standard loader's pyc, now current


def test_missing_or_hash_based_bytecode_goes_the_standard_way(tmp_path):
    finder, path = _tree(tmp_path, "X = 1\n")
    assert _load(finder, "ocirt.mod").X == 1  # no pyc at all
    _write_pyc(path, "X = 2\n")
    with open(_pyc_of(path), "r+b") as f:  # flags 3: a checked hash-based pyc (whose hash is
        f.seek(4)  # wrong here): not the finder's case; importlib checks it and compiles anew
        f.write((3).to_bytes(4, "little"))
    assert _load(finder, "ocirt.mod").X == 1


def test_module_attributes_are_importlibs(tmp_path):
    finder, path = _tree(tmp_path, "X = 1\n")
    module = _load(finder, "ocirt.mod")
    assert module.__file__ == str(path)
    assert module.__cached__ == _pyc_of(path)
    assert module.__spec__.origin == str(path) and module.__package__ == "ocirt"
    assert module.__loader__.get_source("ocirt.mod") == "X = 1\n"


def test_packages_and_what_is_not_a_source_module(tmp_path):
    finder, _ = _tree(tmp_path, "X = 1\n")
    sub = tmp_path / "ocirt" / "sub"
    sub.mkdir()
    (sub / "__init__.py").write_text("Y = 3\n")
    (sub / "native.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    spec = finder.find_spec("ocirt.sub")
    assert spec.submodule_search_locations == [str(sub)]
    assert _load(finder, "ocirt.sub").Y == 3
    assert finder.find_spec("ocirt.sub.native") is None  # an extension module: the next finder's
    assert finder.find_spec("ocirt.nosuch") is None
    assert finder.find_spec("json") is None and finder.find_spec("ocirtx") is None


def test_a_launched_command_loads_ocirt_through_the_finder():
    """What bin/ocirt's process does (launch.fast_imports before the command line): ocirt's
    modules come through _Finder (the path finder, which found ocirt.launch itself, never
    searched a package below ocirt/) and import as before."""
    code = (
        f"import sys; sys.path.insert(0, {REPO!r}); from ocirt import launch;"
        " launch.fast_imports(); import ocirt.cli, ocirt.kernel, ocirt.commands.state;"
        "searched = [p for p in sys.path_importer_cache if p.startswith(ocirt.__path__[0] + '/')];"
        "print(type(ocirt.cli.__loader__).__name__, ocirt.kernel.__spec__.submodule_search_locations[0],"
        " len(searched))"
    )
    p = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["SourceFileLoader", os.path.join(REPO, "ocirt", "kernel"), "0"]


def test_standard_extension_modules_come_from_lib_dynload():
    """_json and resource: the file the path finder would find, without its search; a name
    not listed, or built into the interpreter, is the next finder's."""
    finder = launch._Finder(REPO)
    for name in launch.STDLIB_EXTENSIONS:
        spec = finder.find_spec(name)
        expected = importlib.machinery.PathFinder.find_spec(name)
        if name in sys.builtin_module_names or expected is None:
            assert spec is None
        else:
            assert spec.origin == expected.origin
            assert type(spec.loader).__name__ == "ExtensionFileLoader"
    assert finder.find_spec("_struct") is None and finder.find_spec("posix") is None


# --- the command's bundle (launch._Bundle) ---


def _bundle_tree(tmp_path, modules: dict):
    """<tmp>/ocirt/<name>.py for each module, and the finder of a `state` command over them."""
    for name, source in modules.items():
        path = tmp_path / "ocirt" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(source)
    (tmp_path / "ocirt" / "__pycache__").mkdir(exist_ok=True)
    return _bundle_finder(tmp_path)


def _bundle_finder(tmp_path):
    return launch._Finder(str(tmp_path), launch._Bundle(str(tmp_path), "state"))


def _run_command(finder, names, monkeypatch):
    """Import `names` through `finder` as a command would (into a private sys.modules), then
    save the bundle as launch() does at the end; the modules."""
    modules = {}
    base = finder.bundle.base if finder.bundle is not None else finder.base
    # (without the modules earlier runs of the test loaded from the tree: each run is a process)
    fresh = {n: m for n, m in sys.modules.items() if not (getattr(m, "__file__", "") or "").startswith(base)}
    monkeypatch.setattr(sys, "modules", fresh)
    for name in names:
        spec = finder.find_spec(f"ocirt.{name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        modules[name] = module
    finder.bundle.save()
    return modules


def _bundle_path(tmp_path) -> str:
    return str(tmp_path / "ocirt" / "__pycache__" / f"launch-state.{sys.implementation.cache_tag}.bundle")


def test_the_bundle_is_written_then_serves_the_modules(tmp_path, monkeypatch):
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n", "b": "Y = 2\n"})
    assert not finder.bundle.current and not os.path.exists(_bundle_path(tmp_path))
    _run_command(finder, ["a", "b"], monkeypatch)
    assert os.path.exists(_bundle_path(tmp_path))
    assert os.listdir(tmp_path / "ocirt" / "__pycache__") != []

    finder = _bundle_finder(tmp_path)
    modules = _run_command(finder, ["a", "b"], monkeypatch)
    assert (modules["a"].X, modules["b"].Y) == (1, 2)
    assert type(modules["a"].__loader__) is launch._BundledLoader
    assert modules["a"].__file__ == str(tmp_path / "ocirt" / "a.py")
    assert finder.bundle.current  # nothing came from elsewhere: not written again
    # the code is the bundle's: a pyc that says otherwise (and matches the source) is not read
    _write_pyc(tmp_path / "ocirt" / "a.py", "X = 5\n")
    assert _run_command(_bundle_finder(tmp_path), ["a"], monkeypatch)["a"].X == 1


def test_a_changed_source_is_loaded_and_the_bundle_written_anew(tmp_path, monkeypatch):
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n"})
    _run_command(finder, ["a"], monkeypatch)
    path = tmp_path / "ocirt" / "a.py"
    path.write_text("X = 22\n")  # another size
    finder = _bundle_finder(tmp_path)
    assert _run_command(finder, ["a"], monkeypatch)["a"].X == 22
    assert not finder.bundle.current
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same size, another mtime
    path.write_text("X = 33\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert _run_command(_bundle_finder(tmp_path), ["a"], monkeypatch)["a"].X == 33
    finder = _bundle_finder(tmp_path)
    assert _run_command(finder, ["a"], monkeypatch)["a"].X == 33 and finder.bundle.current


def test_a_module_new_to_the_command_joins_the_bundle(tmp_path, monkeypatch):
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n", "b": "Y = 2\n"})
    _run_command(finder, ["a"], monkeypatch)
    finder = _bundle_finder(tmp_path)
    _run_command(finder, ["a", "b"], monkeypatch)
    assert not finder.bundle.current
    assert set(_bundle_finder(tmp_path).bundle.entries) == {"ocirt.a", "ocirt.b"}


def test_create_keeps_the_inits_modules_it_never_loads(tmp_path, monkeypatch):
    """The init loads rootfs (hooks, console) in the fork, where create's save never sees it:
    the create bundle takes them from their sources (one absent from the tree is left out),
    and a changed one has the file written anew."""
    _bundle_tree(tmp_path, {"a": "X = 1\n", "rootfs": '"""doc"""\nR = 1\n', "hooks": "H = 1\n"})

    def finder():
        return launch._Finder(str(tmp_path), launch._Bundle(str(tmp_path), "create"))

    first = finder()
    _run_command(first, ["a"], monkeypatch)
    entries = finder().bundle.entries
    assert set(entries) == {"ocirt.a", "ocirt.rootfs", "ocirt.hooks"}
    again = finder()
    _run_command(again, ["a"], monkeypatch)
    assert again.bundle.current and os.path.getmtime(again.bundle.path) == os.path.getmtime(first.bundle.path)
    rootfs = _run_command(finder(), ["rootfs"], monkeypatch)["rootfs"]  # as the init loads it
    assert (rootfs.R, rootfs.__doc__, type(rootfs.__loader__)) == (1, None, launch._BundledLoader)
    (tmp_path / "ocirt" / "rootfs.py").write_text("R = 22\n")
    _run_command(finder(), ["a"], monkeypatch)
    assert _run_command(finder(), ["rootfs"], monkeypatch)["rootfs"].R == 22


def test_the_file_keeps_what_other_runs_of_the_command_loaded(tmp_path, monkeypatch):
    """A run that takes another path (loads b, not a) adds to the file: the next run of
    either path finds all it needs, and the file is not written at every change of path."""
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n", "b": "Y = 2\n", "c": "Z = 3\n"})
    _run_command(finder, ["a"], monkeypatch)
    _run_command(_bundle_finder(tmp_path), ["b"], monkeypatch)
    assert set(_bundle_finder(tmp_path).bundle.entries) == {"ocirt.a", "ocirt.b"}
    for names in (["a"], ["b"], ["a", "b"]):
        finder = _bundle_finder(tmp_path)
        _run_command(finder, names, monkeypatch)
        assert finder.bundle.current
    (tmp_path / "ocirt" / "a.py").write_text("X = 11\n")  # a changed source leaves the file
    _run_command(_bundle_finder(tmp_path), ["c"], monkeypatch)
    assert set(_bundle_finder(tmp_path).bundle.entries) == {"ocirt.b", "ocirt.c"}


def test_bundled_code_has_no_docstrings_and_the_same_lines(tmp_path, monkeypatch):
    source = (
        '"""The module."""\n'
        "from __future__ import annotations\n"
        "\n"
        "class K:\n"
        '    """A class."""\n'
        "\n"
        "def f() -> int:\n"
        '    """A function."""\n'
        "    return 1 // 0\n"
        "\n"
        "def g():\n"
        '    """Only this."""\n'
        "\n"
        "def h():\n"
        '    return "not a docstring"\n'
    )
    finder = _bundle_tree(tmp_path, {"a": source})
    assert _run_command(finder, ["a"], monkeypatch)["a"].f.__doc__ == "A function."  # the pyc's
    module = _run_command(_bundle_finder(tmp_path), ["a"], monkeypatch)["a"]
    assert type(module.__loader__) is launch._BundledLoader
    assert (module.__doc__, module.K.__doc__, module.f.__doc__, module.g.__doc__) == (None,) * 4
    assert (module.g(), module.h(), module.f.__annotations__) == (None, "not a docstring", {"return": "int"})
    assert "annotations" not in vars(module)  # the future import: the compiler's flag alone
    with pytest.raises(ZeroDivisionError) as caught:
        module.f()
    assert caught.traceback[-1].lineno + 1 == 9  # (pytest counts from 0)
    assert {p[2:] for p in module.f.__code__.co_positions()} == {(None, None)}
    # (line numbers alone: a traceback names the line, no columns under it)


def test_line_tables_are_what_no_debug_ranges_compiles():
    """bundle_writer.line_numbers_only turns each of ocirt's own modules' location tables into the one
    `python -X no_debug_ranges` compiles (every code object of them), and leaves the lines."""
    paths = sorted(
        os.path.join(d, f)
        for d, _, files in os.walk(os.path.join(REPO, "ocirt"))
        for f in files
        if f.endswith(".py")
    )
    script = (
        "import marshal, sys\n"
        "def tables(c):\n"
        "    yield c.co_linetable\n"
        "    for k in c.co_consts:\n"
        "        if type(k) is type(c): yield from tables(k)\n"
        "paths = marshal.loads(sys.stdin.buffer.read())\n"
        "sys.stdout.buffer.write(marshal.dumps([list(tables(compile(open(p, 'rb').read(), p, 'exec',"
        " dont_inherit=True, optimize=2))) for p in paths]))\n"
    )
    want = marshal.loads(
        subprocess.run(
            [sys.executable, "-X", "no_debug_ranges", "-c", script],
            input=marshal.dumps(paths),
            capture_output=True,
            check=True,
        ).stdout
    )

    def tables(code):
        yield code.co_linetable
        for k in code.co_consts:
            if type(k) is type(code):
                yield from tables(k)

    for path, wanted in zip(paths, want, strict=True):
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec", dont_inherit=True, optimize=2)
        lean = bundle_writer.line_numbers_only(code)
        assert list(tables(lean)) == wanted, path
        assert list(tables(lean)) != list(tables(code)), path  # (columns were there to drop)


@pytest.mark.parametrize("table", [b"\xff", b"\xf0\x7f", b"\x80", b"\xd8\x02"])
def test_a_location_table_of_another_format_is_left_as_it_is(table):
    """A table the reader does not know (cut short, or lines that would not be the same): the
    code as compiled."""
    code = compile("x = 1\ny = 2\n", "m", "exec").replace(co_linetable=table)
    assert bundle_writer.line_numbers_only(code).co_linetable == table


@pytest.mark.parametrize(
    "damage",
    [b"", b"garbage", b"ocirt-bundle" + bytes(8), "truncated", "another format", "another magic"],
)
def test_a_damaged_bundle_is_not_used_and_is_written_anew(tmp_path, monkeypatch, damage):
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n"})
    _run_command(finder, ["a"], monkeypatch)
    path = _bundle_path(tmp_path)
    data = open(path, "rb").read()
    if damage == "truncated":
        damage = data[: len(data) - 20]
    elif damage == "another format":
        damage = data[:12] + (99).to_bytes(4, "little") + data[16:]
    elif damage == "another magic":
        head, _magic, table, codes = _bundle_parts(data)
        damage = _bundle_bytes(head, b"\0\0\r\n", table, codes)
    with open(path, "wb") as f:
        f.write(damage)
    finder = _bundle_finder(tmp_path)
    assert _run_command(finder, ["a"], monkeypatch)["a"].X == 1
    assert not finder.bundle.current
    assert open(path, "rb").read() == data  # written anew, as it was
    assert os.listdir(tmp_path / "ocirt" / "__pycache__") != []
    assert not [n for n in os.listdir(tmp_path / "ocirt" / "__pycache__") if n.endswith(f".{os.getpid()}")]


def test_damaged_code_in_the_bundle_goes_the_sources_way(tmp_path, monkeypatch):
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n"})
    _run_command(finder, ["a"], monkeypatch)
    path = _bundle_path(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[-30:] = b"\xff" * 30  # the end of the only module's code
    with open(path, "wb") as f:
        f.write(bytes(data))
    finder = _bundle_finder(tmp_path)
    assert _run_command(finder, ["a"], monkeypatch)["a"].X == 1
    assert not finder.bundle.current


def _bundle_parts(data: bytes):
    """A bundle's tag and format (16 bytes), its table's magic and table, and its codes."""
    size = int.from_bytes(data[16:20], "little")
    magic, table = marshal.loads(data[20 : 20 + size])
    return data[:16], magic, table, data[20 + size :]


def _bundle_bytes(head: bytes, magic: bytes, table: dict, codes: bytes) -> bytes:
    packed = marshal.dumps((magic, table))
    return head + len(packed).to_bytes(4, "little") + packed + codes


def _rewrite_table(path, change):
    """The bundle at `path` with its table changed by change(table); its codes as they were."""
    head, magic, table, codes = _bundle_parts(open(path, "rb").read())
    change(table)
    with open(path, "wb") as f:
        f.write(_bundle_bytes(head, magic, table, codes))


def _entry_with(field, value):
    def change(table):
        entry = list(table["ocirt.a"])
        entry[field] = value
        table["ocirt.a"] = tuple(entry)

    return change


def _swap_codes(table):
    a, b = table["ocirt.a"], table["ocirt.b"]
    table["ocirt.a"], table["ocirt.b"] = (*a[:4], *b[4:]), (*b[:4], *a[4:])


@pytest.mark.parametrize(
    "damage",
    [
        "not code",  # marshalled data of another kind
        "huge length",  # a read of 2**40 bytes
        "offset past the end",
        "negative offset",
        "package flag",  # a module taken for a package
        "package flag not a bool",
        "another module's code",  # the two entries' codes swapped
    ],
)
def test_a_damaged_entry_goes_the_sources_way_and_is_written_anew(tmp_path, monkeypatch, damage):
    """Damage that unmarshals, or reads nothing, or names another module's code: each module
    loads from its source, and the file is written anew from the sources, not copied as it was
    (a damaged entry would break the command on every run: nothing rewrote it)."""
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n", "b": "Y = 2\n"})
    _run_command(finder, ["a", "b"], monkeypatch)
    path = _bundle_path(tmp_path)
    good = open(path, "rb").read()
    if damage == "not code":
        head, magic, table, codes = _bundle_parts(open(path, "rb").read())
        offset, length = table["ocirt.a"][4:]
        codes = codes[:offset] + marshal.dumps(42).ljust(length, b"\0") + codes[offset + length :]
        with open(path, "wb") as f:
            f.write(_bundle_bytes(head, magic, table, codes))
    else:
        change = {
            "huge length": _entry_with(5, 1 << 40),
            "offset past the end": _entry_with(4, 1 << 20),
            "negative offset": _entry_with(4, -10),
            "package flag": _entry_with(3, True),
            "package flag not a bool": _entry_with(3, 1),
            "another module's code": _swap_codes,
        }[damage]
        _rewrite_table(path, change)
    finder = _bundle_finder(tmp_path)
    modules = _run_command(finder, ["a", "b"], monkeypatch)
    assert (modules["a"].X, modules["b"].Y) == (1, 2)
    assert not finder.bundle.current
    # written anew as the sources give it: the next run takes every module from the file
    assert open(path, "rb").read() == good
    finder = _bundle_finder(tmp_path)
    modules = _run_command(finder, ["a", "b"], monkeypatch)
    assert finder.bundle.current and (modules["a"].X, modules["b"].Y) == (1, 2)
    assert type(modules["a"].__loader__) is launch._BundledLoader and modules["a"].__loader__.from_bundle


def test_a_fifo_in_the_bundles_place_is_not_waited_on(tmp_path, monkeypatch):
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n"})
    os.mkfifo(_bundle_path(tmp_path))

    def hung(*args):
        raise TimeoutError("the open of the fifo waited")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        finder = _bundle_finder(tmp_path)  # (the open would wait for a writer for ever)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert finder.bundle.fd == -1 and not finder.bundle.current
    monkeypatch.setattr(launch.posix, "rename", lambda *a: None)  # (the fifo stays, unread)
    assert _run_command(finder, ["a"], monkeypatch)["a"].X == 1


def test_a_write_cut_short_by_a_stop_leaves_no_file(tmp_path, monkeypatch):
    """A ^C while the file is written: its temporary file goes (it was left, a bundle's size,
    in ocirt/__pycache__ for good), and the ^C is no failure of the command's."""
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n"})

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(launch.posix, "rename", stopped)
    assert _run_command(finder, ["a"], monkeypatch)["a"].X == 1
    assert os.listdir(tmp_path / "ocirt" / "__pycache__") == []


def test_a_closed_bundle_fd_reused_for_another_file_is_not_read(tmp_path, monkeypatch):
    """The init closes every fd it does not keep; a module it imports later must not read its
    code from whatever file then has the bundle's number."""
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n"})
    _run_command(finder, ["a"], monkeypatch)
    finder = _bundle_finder(tmp_path)
    os.close(finder.bundle.fd)
    other = os.open(tmp_path / "ocirt" / "a.py", os.O_RDONLY)  # the lowest free number: the bundle's
    try:
        assert other == finder.bundle.fd
        assert finder.bundle.code(finder.bundle.entries["ocirt.a"]) is None
        assert _run_command(finder, ["a"], monkeypatch)["a"].X == 1
    finally:
        os.close(other)


def test_no_bundle_where_pycache_is_not_writable(tmp_path, monkeypatch):
    finder = _bundle_tree(tmp_path, {"a": "X = 1\n"})
    access = launch.posix.access
    monkeypatch.setattr(launch.posix, "access", lambda path, mode: mode != os.W_OK and access(path, mode))
    assert _run_command(finder, ["a"], monkeypatch)["a"].X == 1
    assert not os.path.exists(_bundle_path(tmp_path))


def test_which_command_has_a_bundle(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    for argv, command in (
        (["ocirt", "--root", "/r", "state", "x"], "state"),
        (["ocirt", "--log", "l", "create", "--bundle", "b", "x"], "create"),
        (["ocirt", "spec"], None),
        (["ocirt", "--help"], None),
    ):
        monkeypatch.setattr(sys, "argv", argv)
        bundle = launch.fast_imports(bundle=True)
        if bundle is not None and bundle.fd >= 0:
            os.close(bundle.fd)
        assert (bundle and bundle.path.rsplit("/", 1)[1].split(".")[0]) == (command and f"launch-{command}")
    monkeypatch.setattr(sys, "argv", ["ocirt", "state", "x"])
    assert launch.fast_imports() is None  # without bundle=True (the library's callers)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # -B: no cache written, no bundle
    assert launch.fast_imports(bundle=True) is None


def test_only_the_trees_own_modules_are_bundled(tmp_path, monkeypatch):
    """ocirt modules loaded from another tree (the test process's own) stay out of the file."""
    import ocirt.paths  # noqa: F401 - loaded from the repository, not from tmp_path

    finder = _bundle_tree(tmp_path, {"a": "X = 1\n"})
    _run_command(finder, ["a"], monkeypatch)
    assert set(_bundle_finder(tmp_path).bundle.entries) == {"ocirt.a"}


def test_cffi_backend_beside_ocirt_only_where_the_path_search_would_end_there(tmp_path, monkeypatch):
    (tmp_path / "ocirt").mkdir()
    name = f"_cffi_backend{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "site", raising=False)
    assert launch._Finder(str(tmp_path)).find_spec("_cffi_backend").origin == str(tmp_path / name)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[:-1]])  # not the last: the path search's
    assert launch._Finder(str(tmp_path)).find_spec("_cffi_backend") is None
    (tmp_path / name).unlink()
    monkeypatch.setattr(sys, "path", [*sys.path[1:], str(tmp_path)])
    assert launch._Finder(str(tmp_path)).find_spec("_cffi_backend") is None  # not there


def test_a_tree_moved_whole_keeps_its_bundle(tmp_path, monkeypatch):
    """Entries name their source below the tree: a copy (mtimes kept) is served from the copied
    file, with its own paths in the module and its code."""
    import shutil

    old = tmp_path / "old"
    old.mkdir()
    finder = _bundle_tree(old, {"a": "def f():\n    return 1\n"})
    _run_command(finder, ["a"], monkeypatch)
    new = tmp_path / "new"
    shutil.copytree(old, new)  # copy2: mtimes kept
    shutil.rmtree(old)
    finder = _bundle_finder(new)
    module = _run_command(finder, ["a"], monkeypatch)["a"]
    assert type(module.__loader__) is launch._BundledLoader and finder.bundle.current
    assert module.__file__ == str(new / "ocirt" / "a.py")
    assert module.f.__code__.co_filename == str(new / "ocirt" / "a.py") and module.f() == 1


def test_a_launched_command_runs_no_garbage_collection():
    """launch() turns the cyclic collector off before the command line's imports (which would
    set off a collection that finds nothing), not only in cli.main."""
    script = (
        "import gc, posix, sys\n"
        f"sys.path.insert(0, {REPO!r})\n"
        "sys.argv = ['ocirt', '--root', '/nonexistent-ocirt-root', 'state', 'nosuch']\n"
        "from ocirt.launch import launch\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and posix.write(2, b'collected\\n'))\n"
        "gc.set_threshold(10)\n"  # (a collection at every few allocations, were it on)
        "launch()\n"
    )
    p = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "container does not exist" in p.stderr, p.stderr
    assert "collected" not in p.stderr
