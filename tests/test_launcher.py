"""bin/ocirt, the command engines run: Python with -I -S, ocirt found without `site`, and the exit
code and output of `python -m ocirt`, from a source tree and from an install (a venv made here)."""

import ast
import json
import os
import shutil
import subprocess
import sys

import pytest
from cli_helpers import REPO, make_bundle, remove_cgroup_parent, run_err_to_file

LAUNCHER = os.path.join(REPO, "bin", "ocirt")


def _run(argv, **kw):
    return subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=60, **kw
    )


def _module(*args):
    return _run([sys.executable, "-m", "ocirt", *args], env={**os.environ, "PYTHONPATH": REPO})


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["state", "--help"],
        ["--root", "/nonexistent-ocirt-root", "state", "nosuch"],
        ["nosuchcommand"],
    ],
)
def test_source_tree_launcher_behaves_as_the_module(args):
    """`bin/ocirt` of a checkout: the same stdout, stderr and exit code as `python -m ocirt`."""
    if not os.access(LAUNCHER, os.X_OK):
        pytest.skip("bin/ocirt is not executable in this checkout")
    got, want = _run([LAUNCHER, *args]), _module(*args)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout)
    strip = lambda s: [line.split(" level=", 1)[-1] for line in s.splitlines()]  # noqa: E731
    assert strip(got.stderr) == strip(want.stderr)


def test_launcher_runs_without_site():
    """What the shell line starts: -I -S, and no `site` imported on the way to ocirt.cli."""
    p = _run([sys.executable, "-I", "-S", "-X", "importtime", LAUNCHER, "--version"])
    assert p.returncode == 0 and p.stdout.startswith("ocirt version ")
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")
    }
    assert "ocirt.cli" in imported
    assert "site" not in imported


def test_launcher_compiles_little_code():
    """Python compiles bin/ocirt on every run, and the parser's memory for its code stays with the
    process (~4-5 KiB a line: the ~30 lines that stood there were ~0.15 MiB of every command's
    peak RSS). Its code is a few statements; the rest is text, compiled only where used, or
    ocirt/boot.py's, which runs from its cached bytecode."""
    tree = ast.parse(open(LAUNCHER).read(), LAUNCHER)
    compiled = [n for n in ast.walk(tree) if not (isinstance(n, ast.Constant) and isinstance(n.value, str))]
    assert len(compiled) <= 125, len(compiled)  # (330 before)


@pytest.mark.parametrize("command", ["create", "run", "exec"])
def test_launcher_opens_no_window_with_cgroupfs(command):
    """With cgroupfs the child of create, run and exec gets into its cgroup by itself
    (Manager.self_placement): no grace period to hide, so no window is opened and its module
    is not loaded (cli.Globals.attach_window loads it for a systemd-managed cgroup)."""
    p = _run([sys.executable, "-I", "-S", "-X", "importtime", LAUNCHER, command, "--help"])
    assert p.returncode == 0, p.stderr
    order = [
        line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")
    ]
    assert "ocirt.cli" in order and "ocirt.attach_window" not in order


@pytest.mark.parametrize("command", ["create", "run", "exec"])
def test_launcher_opens_the_attach_window_before_other_imports(command):
    """With a systemd-managed cgroup (joined by a move): ocirt/attach_window.py is imported
    before os and the command line, so that the cgroup grace period it starts overlaps them
    (ocirt/launch.py)."""
    p = _run(
        [sys.executable, "-I", "-S", "-X", "importtime", LAUNCHER, "--systemd-cgroup", command, "--help"]
    )
    assert p.returncode == 0, p.stderr
    order = [
        line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")
    ]
    window = order.index("ocirt.attach_window")
    assert "os" not in order[:window]
    assert order.index("ocirt.cli") > window


def test_launcher_line_starts_python_isolated():
    with open(LAUNCHER) as f:
        text = f.read()
    assert text.startswith("#!/bin/sh\n")  # not `#!python`: pip would drop the flags of that line
    assert '-I -S "$0" "$@"' in text


@pytest.fixture
def venv(tmp_path):
    """A venv (no pip) with ocirt's source linked into its site-packages, the launcher in its
    bin/, and a .pth file that leaves a mark when `site` processes it."""
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site_packages = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    mark = tmp_path / "site-ran"
    (site_packages / "mark.pth").write_text(
        f"import os; os.close(os.open({str(mark)!r}, os.O_CREAT | os.O_WRONLY))\n"
    )
    shutil.copy(LAUNCHER, root / "bin" / "ocirt")
    os.chmod(root / "bin" / "ocirt", 0o755)
    return root, site_packages, mark


def test_installed_launcher_finds_ocirt_without_site(venv):
    root, site_packages, mark = venv
    os.symlink(os.path.join(REPO, "ocirt"), site_packages / "ocirt")
    p = _run([str(root / "bin" / "ocirt"), "--version"])
    assert p.returncode == 0 and p.stdout.startswith("ocirt version "), p.stderr
    assert not mark.exists(), "site ran: the launcher should find ocirt without it"
    p = _run([str(root / "bin" / "ocirt"), "--root", str(root / "state"), "state", "nosuch"])
    assert p.returncode == 1
    assert p.stderr.strip().endswith('msg="container does not exist: nosuch"')


def test_installed_launcher_in_a_venv_that_sees_the_systems_packages_runs_site(venv):
    """ocirt in the venv's site-packages, but the venv sees the system's packages (its
    dependencies may be there): not the launcher's short way; `site` runs."""
    root, site_packages, mark = venv
    os.symlink(os.path.join(REPO, "ocirt"), site_packages / "ocirt")
    cfg = root / "pyvenv.cfg"
    cfg.write_text(
        cfg.read_text().replace("include-system-site-packages = false", "include-system-site-packages = true")
    )
    p = _run([str(root / "bin" / "ocirt"), "--version"])
    assert p.returncode == 0 and p.stdout.startswith("ocirt version "), p.stderr
    assert mark.exists()


def test_installed_launcher_falls_back_to_site(venv, tmp_path):
    """ocirt reached only through a .pth file (as an editable install is): `site` finds it."""
    root, site_packages, mark = venv
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(os.path.join(REPO, "ocirt"), elsewhere / "ocirt")
    (site_packages / "ocirt-path.pth").write_text(f"{elsewhere}\n")
    p = _run([str(root / "bin" / "ocirt"), "--version"])
    assert p.returncode == 0 and p.stdout.startswith("ocirt version "), p.stderr
    assert mark.exists()


@pytest.mark.parametrize(
    "boot, rc, err",
    [
        ("raise KeyboardInterrupt", 130, ""),
        ("raise SystemExit(7)", 7, ""),
        (
            "raise OSError(24, 'Too many open files')",
            1,
            "ocirt: cannot start: [Errno 24] Too many open files\n",
        ),
        ("raise MemoryError", 1, "ocirt: cannot start: MemoryError\n"),
        ("x = (", 1, "ocirt: cannot start: '(' was never closed (boot.py, line 1)\n"),
        ("raise GeneratorExit", 1, "ocirt: cannot start: GeneratorExit\n"),
        ("", 1, "ocirt: cannot start: the command did not run (a damaged install?)\n"),  # (was 0)
    ],
)
def test_a_start_that_fails_before_the_command_is_one_line(venv, boot, rc, err):
    """The script's own error handler (text, compiled only when a start failed): one line and
    exit 1, 130 for a ^C, a SystemExit as Python ends it; here ocirt/boot.py itself fails."""
    root, site_packages, _mark = venv
    (site_packages / "ocirt").mkdir()
    (site_packages / "ocirt" / "boot.py").write_text(boot + "\n")
    p = _run([str(root / "bin" / "ocirt"), "--version"])
    assert (p.returncode, p.stdout, p.stderr) == (rc, "", err)


def test_installed_launcher_honours_pythonpath(venv, tmp_path):
    """-I drops PYTHONPATH; the launcher puts it back (a --prefix install is found through it)."""
    root, _site_packages, _mark = venv
    elsewhere = tmp_path / "prefix-site"
    elsewhere.mkdir()
    os.symlink(os.path.join(REPO, "ocirt"), elsewhere / "ocirt")
    p = _run([str(root / "bin" / "ocirt"), "--version"], env={**os.environ, "PYTHONPATH": str(elsewhere)})
    assert p.returncode == 0 and p.stdout.startswith("ocirt version "), p.stderr


def test_launcher_called_through_a_symlink_uses_its_own_directory(tmp_path):
    """A link named runc in a directory with another python3: the script's directory decides."""
    if not os.access(LAUNCHER, os.X_OK):
        pytest.skip("bin/ocirt is not executable in this checkout")
    (tmp_path / "python3").write_text("#!/bin/sh\nexit 99\n")
    os.chmod(tmp_path / "python3", 0o755)
    os.symlink(LAUNCHER, tmp_path / "runc")
    p = _run([str(tmp_path / "runc"), "--version"])
    assert p.returncode == 0 and p.stdout.startswith("ocirt version "), p.stderr


def test_launcher_flushes_a_large_output_into_a_pipe():
    """os._exit comes after the flush: nothing of stdout is lost."""
    p = subprocess.run(
        [sys.executable, "-I", "-S", LAUNCHER, "spec", "--help"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )
    want = _module("spec", "--help")
    assert p.returncode == want.returncode == 0
    assert p.stdout == want.stdout and p.stdout.endswith("\n")


@pytest.mark.parametrize("command", [["state"], ["kill", "{id}", "0"], ["start"], ["state", "nosuch"]])
def test_short_commands_do_not_import_os(tmp_path, command):
    """state, start and kill load no `os` (~1.5 ms of a ~10 ms interpreter start): the launcher
    and the modules on their path use posix; and no `__future__` (they quote what annotations
    must not be evaluated); and they read the freezer without the cgroups package. The container is
    this test process, as state.json records it (running: alive with its start time, no
    exec.fifo, a v1 freezer directory that says it is not frozen); kill sends it signal 0."""
    from ocirt.state import proc_start_time

    cid = "noos"
    os.makedirs(tmp_path / cid)
    freezer = tmp_path / "freezer"
    freezer.mkdir()
    (freezer / "freezer.self_freezing").write_text("0\n")
    state = {
        "id": cid,
        "bundle": str(tmp_path),
        "pid": os.getpid(),
        "pid_start": proc_start_time(os.getpid()),
        "cgroup": {"kind": "v1", "paths": {"freezer": str(freezer)}},
    }
    (tmp_path / cid / "state.json").write_text(json.dumps(state))
    args = [a.format(id=cid) for a in command] + ([cid] if len(command) == 1 else [])
    p = _run([sys.executable, "-I", "-S", "-X", "importtime", LAUNCHER, "--root", str(tmp_path), *args])
    imported = _imports(p.stderr)
    assert f"ocirt.commands.{command[0]}" in imported, p.stderr
    assert "os" not in imported
    assert "__future__" not in imported  # `from __future__ import annotations` imports it (~0.2 ms)
    assert not any(m.startswith("ocirt.cgroups") for m in imported)  # the freezer: state.py's
    if command == ["state"]:
        assert json.loads(p.stdout)["status"] == "running"
    if command == ["start"]:
        assert "cannot start an already running container" in p.stderr
    else:
        assert p.returncode == (1 if "nosuch" in args else 0), p.stderr


def _imports(stderr: str) -> set:
    return {
        line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")
    }


def _built_launcher() -> str:
    """The source tree's launcher where the tree has its generated cffi module, else the
    installed one beside this Python (CI's fresh clone is built only into .venv): a tree
    without it parses the C declarations at run time, with cffi, which loads os."""
    if os.path.exists(os.path.join(REPO, "ocirt", "kernel", "_libc.py")):
        return LAUNCHER
    installed = os.path.join(os.path.dirname(sys.executable), "ocirt")
    if not os.access(installed, os.X_OK):
        pytest.skip("neither a built source tree nor an installed ocirt")
    return installed


def test_container_commands_do_not_import_os(tmp_path, busybox_rootfs):
    """create, run and exec (and the children they fork) load no `os` either: their modules take
    paths from ocirt/paths.py and system calls from posix (os is ~1.4 ms of a command)."""
    bundles = {}
    for name, args in (("sleeps", ["sleep", "300"]), ("exits", ["true"])):
        bundles[name] = make_bundle(tmp_path / name, busybox_rootfs, args)
        with open(os.path.join(bundles[name], "config.json")) as f:
            config = json.load(f)
        config["linux"]["cgroupsPath"] = f"/ocirt-test-launcher/{tmp_path.name}-{name}"
        with open(os.path.join(bundles[name], "config.json"), "w") as f:
            json.dump(config, f)
    root, cid = str(tmp_path / "root"), "noos"
    traced = [sys.executable, "-I", "-S", "-X", "importtime", _built_launcher(), "--root", root]
    try:
        p = run_err_to_file([*traced, "create", "--bundle", bundles["sleeps"], cid], tmp_path / "create.err")
        assert p.returncode == 0, p.stderr
        assert "ocirt.stages" in _imports(p.stderr) and "os" not in _imports(p.stderr)
        assert _run([LAUNCHER, "--root", root, "start", cid]).returncode == 0
        p = _run([*traced, "exec", cid, "true"])
        assert p.returncode == 0, p.stderr
        assert "ocirt.execute" in _imports(p.stderr) and "os" not in _imports(p.stderr)
        assert _run([LAUNCHER, "--root", root, "delete", "--force", cid]).returncode == 0
        p = _run([*traced, "run", "--bundle", bundles["exits"], cid])
        assert p.returncode == 0, p.stderr
        assert "ocirt.commands.run" in _imports(p.stderr) and "os" not in _imports(p.stderr)
    finally:
        _run([LAUNCHER, "--root", root, "delete", "--force", cid])
        remove_cgroup_parent("ocirt-test-launcher")


def test_direct_launcher_names_the_venvs_python(venv):
    """scripts/direct-launcher.sh: the #! line names the venv's python3 with -IS; the command
    behaves as before, still without `site`; run twice, it changes nothing more."""
    root, site_packages, mark = venv
    os.symlink(os.path.join(REPO, "ocirt"), site_packages / "ocirt")
    script = os.path.join(REPO, "scripts", "direct-launcher.sh")
    for _ in range(2):
        subprocess.run(["sh", script, str(root)], check=True, timeout=60)
        with open(root / "bin" / "ocirt") as f:
            assert f.readline() == f"#!{root}/bin/python3 -IS\n"
    p = _run([str(root / "bin" / "ocirt"), "--root", str(root / "state"), "state", "nosuch"])
    assert p.returncode == 1 and p.stderr.strip().endswith('msg="container does not exist: nosuch"')
    assert not mark.exists(), "site ran"


def test_installed_launcher_keeps_a_bundle_of_the_commands_code(venv):
    """The first `state` writes ocirt/__pycache__/launch-state.<tag>.bundle; the next ones load
    their modules from it and leave it as it is; a changed module's source has it written anew."""
    root, site_packages, _mark = venv
    shutil.copytree(
        os.path.join(REPO, "ocirt"), site_packages / "ocirt", ignore=shutil.ignore_patterns("__pycache__")
    )
    argv = [str(root / "bin" / "ocirt"), "--root", str(root / "state"), "state", "nosuch"]
    bundle = site_packages / "ocirt" / "__pycache__" / f"launch-state.{sys.implementation.cache_tag}.bundle"
    first = _run(argv)
    assert first.returncode == 1 and bundle.exists(), first.stderr
    written = bundle.stat().st_mtime_ns
    again = _run(argv)
    assert (again.returncode, again.stdout) == (1, first.stdout)
    assert again.stderr.split("level=")[1] == first.stderr.split("level=")[1]  # (its time aside)
    assert bundle.stat().st_mtime_ns == written
    source = site_packages / "ocirt" / "state.py"
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert _run(argv).returncode == 1
    assert bundle.stat().st_mtime_ns != written
    assert [n for n in os.listdir(bundle.parent) if n.startswith("launch-")] == [bundle.name]


def _few_fds(n):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


@pytest.mark.parametrize("fds", [3, 4, 5, 6, 7])
def test_too_few_fds_is_one_line_and_leaves_nothing(tmp_path, busybox_rootfs, fds):
    """An RLIMIT_NOFILE too small for the command to load its modules or make its channel (the
    caller's limit, as a service manager may set it): one line, never a traceback, and create
    and run leave no state or cgroup behind."""
    if not os.access(LAUNCHER, os.X_OK):
        pytest.skip("bin/ocirt is not executable in this checkout")
    bundle = make_bundle(
        tmp_path / "b", busybox_rootfs, ["true"], cgroups_path=f"/ocirt-test-launcher/{tmp_path.name}"
    )
    root = str(tmp_path / "root")
    try:
        for args in (
            ["create", "--bundle", bundle, "c1"],
            ["run", "--bundle", bundle, "c1"],
            ["state", "c1"],
        ):
            p = subprocess.run(
                [sys.executable, "-I", "-S", LAUNCHER, "--root", root, *args],
                stdin=subprocess.DEVNULL,  # (the pipes below are fds 1 and 2, open before the limit)
                capture_output=True,
                text=True,
                timeout=60,
                preexec_fn=_few_fds(fds),
            )
            assert p.returncode != 0 and len(p.stderr.splitlines()) == 1, (args, p.stderr)
            assert "Traceback" not in p.stderr
            assert not os.path.isdir(root) or os.listdir(root) == [], os.listdir(root)
            assert not any(
                os.path.exists(f"/sys/fs/cgroup/{top}/ocirt-test-launcher/{tmp_path.name}")
                for top in os.listdir("/sys/fs/cgroup")
            )
    finally:
        _run([LAUNCHER, "--root", root, "delete", "--force", "c1"])
        remove_cgroup_parent("ocirt-test-launcher")


def test_too_few_fds_never_takes_a_running_container_for_stopped(tmp_path, busybox_rootfs):
    """Where there is no fd left to read /proc/PID/stat with, the status is an error, not
    `stopped`: kill said "container not running" and exec "cannot exec in a stopped container"
    of a container that ran, and a delete would have gone on."""
    if not os.access(LAUNCHER, os.X_OK):
        pytest.skip("bin/ocirt is not executable in this checkout")
    bundle = make_bundle(
        tmp_path / "b", busybox_rootfs, ["sleep", "300"], cgroups_path=f"/ocirt-test-launcher/{tmp_path.name}"
    )
    root = str(tmp_path / "root")
    try:
        p = run_err_to_file(
            [LAUNCHER, "--root", root, "run", "-d", "--bundle", bundle, "c1"], tmp_path / "err"
        )
        assert p.returncode == 0, p.stderr
        for fds in range(4, 12):
            for args in (["kill", "c1", "0"], ["exec", "c1", "true"], ["delete", "c1"]):
                p = subprocess.run(
                    [sys.executable, "-I", "-S", LAUNCHER, "--root", root, *args],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    preexec_fn=_few_fds(fds),
                )
                assert "Traceback" not in p.stderr and len(p.stderr.splitlines()) <= 1, (fds, args, p.stderr)
                assert (
                    "stopped" not in p.stderr.replace("not stopped: running", "")
                    and "not running" not in p.stderr
                )
        state = json.loads(_run([LAUNCHER, "--root", root, "state", "c1"]).stdout)
        assert state["status"] == "running"
    finally:
        _run([LAUNCHER, "--root", root, "delete", "--force", "c1"])
        remove_cgroup_parent("ocirt-test-launcher")


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["help", "state"], ["state", "--help"]])
def test_output_that_cannot_be_written_is_one_line(args):
    """The launcher's last flush into a full stdout: one line saying so and exit 1 (it was 120
    and no word, as the interpreter ends)."""
    if not os.access(LAUNCHER, os.X_OK):
        pytest.skip("bin/ocirt is not executable in this checkout")
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            [LAUNCHER, *args],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert p.returncode == 1
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.rstrip().endswith('msg="write /dev/stdout: no space left on device"')
