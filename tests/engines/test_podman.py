"""ocirt under podman 4.3 + conmon. Needs root and podman and conmon on PATH.

Each `podman run` costs a few tenths of a second here, but took ~20 s at first (with runc too): an
attached `podman run` waits up to 20 s ("Exceeded conmon timeout waiting for container to exit") for
the container to go from "stopped" to "exited", which is the job of conmon's exit command
(`podman --root GRAPHROOT ... container cleanup`). With `static_dir` set in containers.conf away from
GRAPHROOT/libpod, that cleanup opens another database (`--root` resets the static dir), finds no
container and exits 125, so every run hit the timeout. Hence static_dir and volume_path stay at their
defaults under the private graphroot. The same 20 s (and no exit command: a poststop hook never
ran) came back under pytest-xdist, whose tmp paths are longer (.../pytest-N/popen-gwN/podman0): some
path of podman's or conmon's under D grows past a limit. So D is a short mkdtemp in /tmp. Still,
keep the number of `podman run`s small.

The session (podman_helpers.py) is private: its own containers.conf, storage and runtime symlink under
a short tmp dir, all undone at the end.
"""

import json
import os
import re

import pytest
from engine_helpers import features_gaps
from podman_helpers import IMAGE, podman_session, podman_usable

pytestmark = pytest.mark.skipif(bool(podman_usable()), reason=podman_usable() or "-")


@pytest.fixture(scope="module")
def podman(busybox_rootfs):
    with podman_session(busybox_rootfs) as p:
        yield p


def test_run_rm_echo(podman):
    res = podman("run", "--rm", IMAGE, "echo", "hello-podman")
    assert res.stdout == "hello-podman\n", res
    assert podman("ps", "-a", "-q").stdout == ""


def test_detached_exec_top_pause_rm(podman):
    cid = podman("run", "-d", "--name", "ocirt-detached", IMAGE, "sleep", "300").stdout.strip()
    try:
        assert (
            podman("exec", cid, "sh", "-c", "echo in-exec; cat /proc/1/cmdline").stdout
            == "in-exec\nsleep\x00300\x00"
        )
        assert podman("exec", cid, "sh", "-c", "exit 4", check=False).returncode == 4

        tty = podman("exec", "-t", cid, "tty").stdout
        # Seen here: "\n", not "\r\n" (ONLCR off on the pty); tolerate either.
        assert re.fullmatch(r"/dev/pts/\d+\r?\n", tty), repr(tty)

        top = podman("top", cid).stdout.splitlines()
        assert top[0].split()[0] == "USER"
        assert any(line.split()[-2:] == ["sleep", "300"] for line in top[1:]), top

        podman("pause", cid)
        assert podman("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
        podman("unpause", cid)
        assert podman("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"
    finally:
        podman("rm", "-f", "-t", "0", cid)
    assert podman("ps", "-a", "-q").stdout == ""
    assert not os.path.exists(f"/run/ocirt/{cid}")


def test_run_tty(podman):
    res = podman("run", "--rm", "-t", IMAGE, "sh", "-c", "tty; echo tty-done")
    assert re.fullmatch(r"/dev/pts/\d+\r?\ntty-done\r?\n", res.stdout), repr(res.stdout)


def test_missing_binary_shows_runtime_error(podman):
    res = podman("run", "--rm", IMAGE, "/no/such/binary", check=False)
    # podman maps "no such file or directory" in the runtime's error to 127 and shows the runtime's
    # last json log line with level "error" (here: "ocirt create failed: unable to start container process: exec: ...").
    assert res.returncode == 127, res.stderr
    assert "ocirt create failed" in res.stderr, res.stderr
    assert "stat /no/such/binary: no such file or directory" in res.stderr, res.stderr
    assert podman("ps", "-a", "-q").stdout == ""


HOOK_SCRIPT = """#!/bin/sh
# args: <stage> <dir>. Keeps who ran it (its parent's command line) and the state it got on stdin.
tr '\\0' ' ' < /proc/$PPID/cmdline > "$2/$1.parent"
cat > "$2/$1.state"
"""


def test_hooks_from_hooks_dir(podman, tmp_path):
    """podman --hooks-dir: podman puts the prestart, createRuntime and poststart hooks of the
    oci-hooks(5) files into config.json, and ocirt runs them (from `create` and `start`) with the
    container's state on stdin. poststop is not the runtime's job under podman 4.3: podman keeps
    poststop hooks out of config.json and runs them itself in `podman container cleanup`; the test
    checks that too, so that it notices if podman starts handing them to the runtime."""
    hooks_dir, out = tmp_path / "hooks.d", tmp_path / "out"
    hooks_dir.mkdir()
    out.mkdir()
    script = tmp_path / "hook.sh"
    script.write_text(HOOK_SCRIPT)
    script.chmod(0o755)
    stages = ("prestart", "createRuntime", "poststart", "poststop")
    for stage in stages:
        (hooks_dir / f"50-{stage}.json").write_text(
            json.dumps(
                {
                    "version": "1.0.0",
                    "hook": {
                        "path": str(script),
                        "args": ["hook.sh", stage, str(out)],
                        "env": ["PATH=/usr/bin:/bin"],
                    },
                    "when": {"always": True},
                    "stages": [stage],
                }
            )
        )
    name = f"ocirt-hooks-{os.getpid()}"
    res = podman("--hooks-dir", str(hooks_dir), "run", "--name", name, IMAGE, "sh", "-c", "echo in-container")
    assert res.stdout == "in-container\n"
    try:
        cid = podman("inspect", "-f", "{{.Id}}", name).stdout.strip()
        config_path = podman("inspect", "-f", "{{.OCIConfigPath}}", name).stdout.strip()
        with open(config_path) as f:
            config = json.load(f)
        assert sorted(config["hooks"]) == ["createRuntime", "poststart", "prestart"], config["hooks"]

        def got(stage):
            parent = (out / f"{stage}.parent").read_text().split()
            return parent, json.loads((out / f"{stage}.state").read_text())

        for stage, command, status in (
            ("prestart", "create", "creating"),
            ("createRuntime", "create", "creating"),
            ("poststart", "start", "running"),
        ):
            parent, state = got(stage)
            script = [a for a in parent[1:] if not a.startswith("-")][0]  # past python's flags
            assert script == podman.runtime and command in parent and parent[-1] == cid, parent
            assert state["id"] == cid and state["status"] == status, state
            assert state["bundle"] == os.path.dirname(config_path), state
            assert state["pid"] > 0, state
            assert state["annotations"]["io.container.manager"] == "libpod", state
        assert got("prestart")[1]["pid"] == got("poststart")[1]["pid"]

        parent, state = got("poststop")  # podman's own
        assert parent[0] == "/usr/bin/podman" and parent[-2:] == ["cleanup", cid], parent
        assert state["id"] == cid and state["status"] == "stopped", state
    finally:
        podman("rm", "-f", "-t", "0", name)


def test_features_cover_config(podman):
    """podman 4.3 never calls `features` (ENGINES.md); still, what it asks for in config.json
    (mount options, namespaces, capabilities, seccomp actions, operators and arches) is all in
    `ocirt features`."""
    cid = podman("create", IMAGE, "true").stdout.strip()
    try:
        podman("init", cid)  # has the runtime create it from config.json
        config_path = podman("inspect", "-f", "{{.OCIConfigPath}}", cid).stdout.strip()
        with open(config_path) as f:
            config = json.load(f)
        assert config["linux"]["seccomp"]["syscalls"], "no seccomp profile to check"
        assert features_gaps(config) == []
    finally:
        podman("rm", "-f", "-t", "0", cid)


def test_run_tmpfs_tmpcopyup(podman):
    """`podman run --tmpfs DIR` puts "tmpcopyup" (copy what the image has in DIR into the new
    tmpfs; runc does) in the mount's options."""
    res = podman(
        "run",
        "--rm",
        "--tmpfs",
        "/usr",
        IMAGE,
        "sh",
        "-c",
        "ls /usr; grep ' /usr ' /proc/mounts",
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:3] == ["bin", "sbin", "tmpfs"], res.stdout
