"""ocirt/paths.py against os.path: the same answers for the paths ocirt meets (and odd ones)."""

import os
import posixpath

import pytest

from ocirt import paths

LEXICAL = [
    "",
    ".",
    "..",
    "/",
    "//",
    "///",
    "////x",
    "//x/y",
    "a",
    "a/",
    "a//b",
    "/a/b/",
    "/a/./b/../c",
    "a/../../b",
    "../a/..",
    "/../a",
    "//../a",
    "a/b/../../..",
    "./a/./",
    "/x/y/z/../../w/.",
    "bundle/rootfs",
    "/run/ocirt/c1/state.json",
    "é/ü",
]


@pytest.mark.parametrize("p", LEXICAL)
def test_lexical_functions_agree_with_os_path(p):
    assert paths.normpath(p) == posixpath.normpath(p)
    assert paths.split(p) == posixpath.split(p)
    assert paths.dirname(p) == posixpath.dirname(p)
    assert paths.basename(p) == posixpath.basename(p)
    assert paths.abspath(p) == posixpath.abspath(p)


@pytest.mark.parametrize(
    "parts",
    [
        ("a",),
        ("a", "b"),
        ("a/", "b"),
        ("", "b"),
        ("a", ""),
        ("a", "/b", "c"),
        ("/", "x"),
        ("a", "b/", "", "c"),
    ],
)
def test_join_agrees_with_os_path(parts):
    assert paths.join(*parts) == posixpath.join(*parts)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """Links of every kind: absolute, relative, through "..", chains, loops, dangling."""
    root = tmp_path.resolve()
    (root / "d" / "e").mkdir(parents=True)
    (root / "f").write_text("x")
    os.symlink("d", root / "rel")
    os.symlink(str(root / "d" / "e"), root / "abs")
    os.symlink("../f", root / "d" / "up")
    os.symlink("rel/e", root / "chain")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("self/x", root / "self")
    os.symlink("missing/x", root / "dangling")
    os.symlink("..", root / "d" / "parent")
    os.symlink("/", root / "toroot")
    monkeypatch.chdir(root)
    return root


REAL = [
    "rel",
    "rel/e",
    "abs/../e",
    "d/up",
    "chain/..",
    "chain/../up",
    "loop1",
    "loop1/a/b",
    "self",
    "dangling",
    "dangling/../z",
    "d/parent/d/parent/f",
    "toroot/etc",
    "nothere/../rel",
    "../x",
    ".",
    "rel/../../..",
    "f/..",
]


@pytest.mark.parametrize("p", REAL)
def test_realpath_agrees_with_os_path(tree, p):
    assert paths.realpath(p) == os.path.realpath(p)
    assert paths.realpath(str(tree / p)) == os.path.realpath(str(tree / p))


def test_kinds(tree):
    assert paths.exists("f") and paths.exists("rel") and not paths.exists("dangling")
    assert paths.is_dir("rel") and not paths.is_dir("f") and not paths.is_dir("nothere")
    assert paths.is_file("f") and paths.is_file("d/up") and not paths.is_file("d")
    assert not paths.exists("a\0b") and not paths.is_dir("a\0b")


def test_makedirs(tree):
    paths.makedirs(str(tree / "m" / "n" / "o"), 0o711)
    assert (tree / "m" / "n" / "o").is_dir()
    assert os.stat(tree / "m" / "n" / "o").st_mode & 0o777 == 0o711 & ~_umask()
    paths.makedirs(str(tree / "m" / "n" / "o"), 0o711)  # there already: fine
    with pytest.raises(FileExistsError):
        paths.makedirs(str(tree / "f"))
    with pytest.raises(NotADirectoryError):
        paths.makedirs(str(tree / "f" / "g"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_environ_get_reads_os_environ_once_os_is_loaded(monkeypatch):
    monkeypatch.setenv("OCIRT_PATHS_TEST", "yes")  # os.environ: os is loaded in the tests
    assert paths.environ_get("OCIRT_PATHS_TEST") == "yes"
    monkeypatch.delenv("OCIRT_PATHS_TEST")
    assert paths.environ_get("OCIRT_PATHS_TEST", "no") == "no"


def test_fsdecode_agrees_with_os():
    for b in (b"plain", "é".encode(), b"\xff\xfe"):
        assert paths.fsdecode(b) == os.fsdecode(b)
