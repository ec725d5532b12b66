"""The lifecycle's parts that need no root: hooks' failures, timeouts and working directories,
the checks of a config without a mount namespace or without process, deprecated fields, and what
`ocirt plan` lists for them."""

import json
import os
import time

import pytest

from ocirt import checks, hooks
from ocirt.cli import main
from ocirt.errors import ConfigError, OcirtError


def sh_hook(script, timeout=None):
    h = {"path": "/bin/sh", "args": ["sh", "-c", script]}
    if timeout:
        h["timeout"] = timeout
    return h


def test_failing_hook_raises_naming_it(tmp_path):
    with pytest.raises(OcirtError) as e:
        hooks.run({"createRuntime": [sh_hook("exit 0"), sh_hook("exit 4")]}, "createRuntime", {})
    assert "/hooks/createRuntime/1" in str(e.value) and "status 4" in str(e.value)


def test_a_hook_that_cannot_be_executed_is_one_error_naming_why(tmp_path, capfd):
    """The exec's own error (not "status 127", nor a second line on stderr)."""
    for path, why in ((str(tmp_path / "missing"), "no such file or directory"), ("/", "permission denied")):
        with pytest.raises(OcirtError) as e:
            hooks.run({"prestart": [{"path": path}]}, "prestart", {})
        assert str(e.value) == f"/hooks/prestart/0: exec {path}: {why}"
    assert capfd.readouterr().err == ""


def test_run_all_warns_and_goes_on(tmp_path):
    out = tmp_path / "out"
    warnings = []
    hooks.run_all(
        {"poststop": [sh_hook("exit 2"), sh_hook(f"echo ran > {out}")]},
        "poststop",
        {"status": "stopped"},
        warnings.append,
    )
    assert out.read_text() == "ran\n"
    assert len(warnings) == 1 and "/hooks/poststop/0" in warnings[0]


def test_timeout_kills_the_hook_without_waiting_it_out():
    t0 = time.monotonic()
    with pytest.raises(OcirtError, match="timed out after 1s"):
        hooks.run({"prestart": [sh_hook("exec sleep 30", timeout=1)]}, "prestart", {})
    assert time.monotonic() - t0 < 5


def test_hook_gets_state_and_working_directory(tmp_path):
    out = tmp_path / "out"
    hooks.run(
        {"poststart": [sh_hook(f"pwd -P > {out}; cat >> {out}")]},
        "poststart",
        {"status": "running", "id": "x"},
        cwd=str(tmp_path),
    )
    cwd, state = out.read_text().split("\n", 1)
    assert cwd == os.path.realpath(tmp_path)
    assert json.loads(state) == {"status": "running", "id": "x"}


def test_a_hook_starts_with_no_signal_ignored(tmp_path):
    """This (Python) process ignores SIGPIPE and SIGXFSZ; the hook must not inherit that: an
    ignored signal stays ignored across execve."""
    import signal

    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    out = tmp_path / "out"
    hooks.run({"prestart": [sh_hook(f"grep SigIgn /proc/self/status > {out}")]}, "prestart", {})
    assert out.read_text().split()[1] == "0" * 16


def test_deprecated_kernel_memory_fields_warn():
    linux = {"resources": {"memory": {"kernel": 1, "kernelTCP": 2, "limit": 3}}}
    found = checks.deprecated(linux)
    assert len(found) == 2
    assert "memory/kernel " in found[0] and "memory/kernelTCP " in found[1]
    assert checks.deprecated({"resources": {"memory": {"limit": 3}}}) == []


@pytest.mark.parametrize(
    "edit,pointer",
    [
        (
            lambda c: c.update(mounts=[{"destination": "/proc", "type": "proc", "source": "proc"}]),
            "/mounts/0",
        ),
        (lambda c: c["linux"].update(maskedPaths=["/proc/kcore"]), "/linux/maskedPaths"),
        (lambda c: c["linux"].update(readonlyPaths=["/proc/sys"]), "/linux/readonlyPaths"),
        (lambda c: c["linux"].update(rootfsPropagation="shared"), "/linux/rootfsPropagation"),
        (lambda c: c["root"].update(readonly=True), "/root/readonly"),
    ],
)
def test_without_mount_ns_what_would_mount_on_the_host_is_refused(edit, pointer):
    config = {"root": {"path": "rootfs"}, "mounts": [], "linux": {}}
    edit(config)
    with pytest.raises(ConfigError) as e:
        checks.check_without_mount_ns(config, config["linux"])
    assert e.value.pointer == pointer and "mount namespace" in str(e.value)
    checks.check_without_mount_ns({"root": {"path": "rootfs"}}, {})  # nothing to mount: fine


# -- what `ocirt plan` lists ---------------------------------------------------------------------


def _edit(bundle, fn):
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    fn(config)
    path.write_text(json.dumps(config))


def _plan(bundle, capsys):
    assert main(["--root", str(bundle / "state"), "plan", "--bundle", str(bundle)]) == 0
    return capsys.readouterr().out.splitlines()


def test_plan_without_mount_namespace_chroots_and_mounts_nothing(plan_bundle, capsys):
    def no_mnt(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
        c["linux"]["maskedPaths"] = c["linux"]["readonlyPaths"] = []
        c["mounts"] = []
        c["root"]["readonly"] = False

    _edit(plan_bundle, no_mnt)
    lines = _plan(plan_bundle, capsys)
    root = str(plan_bundle / "rootfs")
    assert f"chroot('{root}')" in lines
    assert not any(line.startswith(("mount(", "pivot_root(", "umount(")) for line in lines)
    assert not any("CLONE_NEWNS" in line for line in lines)
    assert lines.index(f"chroot('{root}')") < next(
        i for i, line in enumerate(lines) if line.startswith("execve(")
    )


def test_plan_without_process_has_no_execve(plan_bundle, capsys):
    _edit(plan_bundle, lambda c: c.pop("process"))
    lines = _plan(plan_bundle, capsys)
    assert "# init: start" in lines
    assert not any(line.startswith("execve(") for line in lines)
