"""ocirt/launch.py's finder: ocirt's modules found without the path search and loaded as importlib
loads them (their cached bytecode where it is current, else compiled), with the same module
attributes as importlib's own finder gives."""

import importlib.util
import marshal
import os
import subprocess
import sys

from ocirt import launch

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
