"""ocirt installed without the checkout: the wheel and the sdist are built (python -m build, from a
copy of the source tree), each is installed into a fresh virtualenv, and the wheel also with the
system's pip into a prefix; every install must give a working `ocirt` run from outside the
checkout: the cffi modules generated at build time, the JSON schemas, `ocirt spec`, and `ocirt run`
of a bundle made with `ocirt spec` and a busybox rootfs.

Needs root (`ocirt run`), the `build` package (the `test` extra) and pip's package index for the
dependencies (cffi, jsonschema, click, pyroute2) and, for the sdist, the build requirements.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM_PYTHON = "/usr/bin/python3"
# what the installed command runs with: no PYTHONPATH, no virtualenv, nothing of the checkout
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (ocirt run)"),
    pytest.mark.skipif(
        subprocess.run([sys.executable, "-c", "import build"], capture_output=True).returncode != 0,
        reason="the build package is not installed (the test extra)",
    ),
]

# left out of the copy the packages are built from: what a build or a test run made in the tree
IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".benchmarks",
    "rootfs",
    "_libc.py",
    "_libseccomp.py",
)


def _run(argv, timeout=600, **kw):
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, argv))}: rc={res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def _version():
    with open(os.path.join(REPO, "ocirt", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip("\"'")
    raise AssertionError("no __version__ in ocirt/__init__.py")


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(wheel, sdist) built from a copy of the source tree (so that parallel runs and the
    checkout's own build/ and *.egg-info do not meet)."""
    base = tmp_path_factory.mktemp("dist")
    src, out = base / "src", base / "out"
    shutil.copytree(REPO, src, ignore=IGNORE, symlinks=True)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)])
    version = _version()
    wheel = out / f"ocirt-{version}-py3-none-any.whl"
    sdist = out / f"ocirt-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), os.listdir(out)
    yield str(wheel), str(sdist)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    path = tmp_path_factory.mktemp("install-rootfs") / "rootfs"
    _run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), str(path)])
    yield str(path)
    shutil.rmtree(path.parent, ignore_errors=True)


def check_installed(ocirt, python, env, work, rootfs):
    """The installed command and package work from `work`, a directory outside the checkout."""
    res = _run([ocirt, "--version"], cwd=work, env=env)
    assert f"ocirt version {_version()}" in res.stdout, res.stdout

    # the package is the installed one, with the cffi modules made at build time and the schemas
    probe = (
        "import json, os, ocirt, ocirt.validate as v, ocirt.kernel._libc, ocirt.kernel._libseccomp;"
        "print(json.dumps([ocirt.__file__, v.schema_dir()]))"
    )
    package_file, schemas = json.loads(_run([python, "-c", probe], cwd=work, env=env).stdout)
    package = os.path.dirname(package_file)
    assert not package.startswith(REPO + os.sep), package
    assert schemas == os.path.join(package, "_schemas")

    features = json.loads(_run([ocirt, "features"], cwd=work, env=env).stdout)
    assert "linux" in features

    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    _run([ocirt, "spec", "--bundle", bundle], cwd=work, env=env)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    # the jsonschema validator on the packaged schemas accepts what `ocirt spec` wrote
    check = "import json, sys, ocirt.validate as v; v.validate_with_jsonschema(json.load(sys.stdin))"
    _run([python, "-c", check], cwd=work, env=env, input=json.dumps(config))
    config["root"] = {"path": rootfs, "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/sh", "-c", "echo hello-from-$(hostname)"]
    config["hostname"] = "installed"
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)

    root = os.path.join(work, "state")
    cid = f"install-{uuid.uuid4().hex[:8]}"
    try:
        res = _run([ocirt, "--root", root, "run", "--bundle", bundle, cid], cwd=work, env=env, timeout=60)
        assert res.stdout == "hello-from-installed\n", res.stdout + res.stderr

        # the fast validator on the packaged schemas: a config without process.args is refused
        del config["process"]["args"]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        res = subprocess.run(
            [ocirt, "--root", root, "run", "--bundle", bundle, cid + "-bad"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert res.returncode == 1 and "/process/args" in res.stderr, res.stderr
    finally:
        for c in (cid, cid + "-bad"):
            subprocess.run(
                [ocirt, "--root", root, "delete", "--force", c], env=env, capture_output=True, timeout=60
            )
    assert os.listdir(root) == []


def _fresh_venv(path):
    """A new virtualenv of the interpreter the tests run on (a venv of a venv's Python is one of its
    base interpreter: none of the test venv's packages are in it)."""
    _run([sys.executable, "-m", "venv", str(path)])
    return os.path.join(path, "bin")


def _system_pip_usable():
    res = (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import sys, pip; sys.exit(sys.version_info < (3, 11))"],
            capture_output=True,
        )
        if os.access(SYSTEM_PYTHON, os.X_OK)
        else None
    )
    return res is not None and res.returncode == 0


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_install_into_fresh_venv(dists, rootfs, tmp_path, kind):
    dist = dists[0] if kind == "wheel" else dists[1]
    bin_dir = _fresh_venv(tmp_path / "venv")
    _run([os.path.join(bin_dir, "pip"), "install", "-q", "--disable-pip-version-check", dist])
    work = tmp_path / "work"
    work.mkdir()
    check_installed(
        os.path.join(bin_dir, "ocirt"), os.path.join(bin_dir, "python"), CLEAN_ENV, str(work), rootfs
    )


@pytest.mark.skipif(not _system_pip_usable(), reason="no system python3 >= 3.11 with pip")
def test_install_with_system_pip_into_prefix(dists, rootfs, tmp_path):
    """`python3 -m pip install --prefix P` of the system's Python (Debian's puts it under
    P/local): the dependencies go into P too; the command runs with PYTHONPATH naming P's
    site directory."""
    prefix = tmp_path / "prefix"
    _run(
        [
            SYSTEM_PYTHON,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--prefix",
            str(prefix),
            dists[0],
        ],
        env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
    )
    [package] = glob.glob(f"{prefix}/**/site-packages/ocirt/__init__.py", recursive=True) or glob.glob(
        f"{prefix}/**/dist-packages/ocirt/__init__.py", recursive=True
    )
    site = os.path.dirname(os.path.dirname(package))
    [ocirt] = glob.glob(f"{prefix}/**/bin/ocirt", recursive=True)
    work = tmp_path / "work"
    work.mkdir()
    check_installed(ocirt, SYSTEM_PYTHON, {**CLEAN_ENV, "PYTHONPATH": site}, str(work), rootfs)
