"""The public Python API (ocirt/api.py) against the real kernel, as root: the same operations
as the command line, from the same code."""

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest
from cli_helpers import REPO, make_bundle, remove_cgroup_parent

import ocirt
import ocirt.api

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def rt(tmp_path):
    runtime = ocirt.Runtime(str(tmp_path / "root"))
    yield runtime
    for st in runtime.list():
        ocirt.Container(runtime, st["id"]).delete(force=True)


def bundle(tmp_path, rootfs, args, name="bundle", **linux):
    path = make_bundle(tmp_path / name, rootfs, args)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["linux"]["cgroupsPath"] = f"/ocirt-test-api/{uuid.uuid4().hex[:10]}"
    config["linux"].update(linux)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


@pytest.fixture(scope="module", autouse=True)
def parent_cgroup():
    yield
    remove_cgroup_parent("ocirt-test-api")


def test_import_is_lazy():
    """`import ocirt` (the command's first import) does not load the API."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, ocirt; print('ocirt.api' in "
            "sys.modules); ocirt.Runtime; print('ocirt.api' in sys.modules)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["False", "True"]


def test_lifecycle(rt, tmp_path, busybox_rootfs):
    cid = f"api-{uuid.uuid4().hex[:8]}"
    box = rt.create(cid, bundle(tmp_path, busybox_rootfs, ["sleep", "300"]))
    st = box.state()
    assert st["id"] == cid and st["status"] == "created" and st["pid"] > 0
    box.start()
    assert box.status == "running"
    assert box.pids() == [st["pid"]] or st["pid"] in box.pids()
    assert rt.list()[0]["id"] == cid
    assert rt.container(cid).state()["pid"] == st["pid"]
    box.pause()
    assert box.status == "paused"
    box.resume()
    box.kill("KILL")  # the init, pid 1 of its namespace, ignores an unhandled TERM
    assert box.wait(timeout=10) == "stopped"
    box.delete()
    assert rt.list() == []
    with pytest.raises(ocirt.OcirtError, match="does not exist"):
        rt.container(cid)


def test_exec_update_stats(rt, tmp_path, busybox_rootfs):
    cid = f"api-{uuid.uuid4().hex[:8]}"
    box = rt.create(
        cid, bundle(tmp_path, busybox_rootfs, ["sleep", "300"], resources={"pids": {"limit": 50}})
    )
    box.start()
    assert box.exec(["sh", "-c", "exit 7"]) == 7
    assert box.exec(["sh", "-c", 'test "$X" = 1 && test "$(pwd)" = /tmp'], env=["X=1"], cwd="/tmp") == 0
    pid = box.exec(["sleep", "5"], detach=True)
    assert pid in box.pids()
    box.update({"pids": {"limit": 80}})
    assert box.stats()["pids"]["limit"] == 80
    event = next(box.events(interval=0.01))  # as `ocirt events` prints them
    assert event["type"] == "stats" and event["id"] == box.id
    assert event["data"]["pids"]["limit"] == 80
    box.kill(signal.SIGKILL, all=True)
    box.wait(timeout=10)
    box.delete()


def test_exec_into_a_container_at_its_pids_limit(rt, tmp_path, busybox_rootfs):
    """The API's exec forks its process from a stage 1 outside the cgroup and moves it in: a
    move is not held to the pids limit, a fork in the cgroup would be (EAGAIN)."""
    cid = f"api-{uuid.uuid4().hex[:8]}"
    box = rt.create(cid, bundle(tmp_path, busybox_rootfs, ["sleep", "300"], resources={"pids": {"limit": 1}}))
    box.start()
    assert box.exec(["sh", "-c", "exit 7"]) == 7  # (a builtin: no fork)
    box.kill(signal.SIGKILL)
    box.wait(timeout=10)
    box.delete()


def test_run_returns_the_exit_code(rt, tmp_path, busybox_rootfs):
    assert (
        rt.run(f"api-{uuid.uuid4().hex[:8]}", bundle(tmp_path, busybox_rootfs, ["sh", "-c", "exit 3"])) == 3
    )
    assert rt.list() == []


def test_errors_are_the_commands(rt, tmp_path, busybox_rootfs):
    path = bundle(tmp_path, busybox_rootfs, ["true"])
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["process"]["args"] = []
    with pytest.raises(ocirt.ConfigError) as e:
        ocirt.api.validate(config)
    assert e.value.pointer == "/process/args"
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    with pytest.raises(ocirt.ConfigError):
        rt.create("api-bad", path)
    assert rt.list() == []


def test_plan_spec_features(tmp_path, busybox_rootfs):
    steps = ocirt.api.plan(bundle(tmp_path, busybox_rootfs, ["true"]))
    assert steps[-1]["op"] == "execve"
    assert {"stage", "op", "args"} <= set(steps[0])
    assert ocirt.spec()["process"]["args"] == ["sh"]
    assert ocirt.spec(rootless=True)["linux"]["uidMappings"][0]["hostID"] == os.geteuid()
    assert ocirt.features()["ociVersionMax"] == "1.3.0"
    assert shutil.which("true")


def test_no_child_or_zombie_lands_in_the_caller(rt, tmp_path, busybox_rootfs):
    """run and a foreground exec wait as a subreaper in a helper, not in the caller: the caller
    stays no subreaper and gets no zombie, even of processes the container leaves behind."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    flag = ctypes.c_int(0)
    box = rt.create(f"api-{uuid.uuid4().hex[:8]}", bundle(tmp_path, busybox_rootfs, ["sleep", "300"]))
    box.start()
    assert box.exec(["sh", "-c", "sleep 30 & exit 0"]) == 0  # leaves an orphan
    assert (
        rt.run(
            f"api-{uuid.uuid4().hex[:8]}", bundle(tmp_path, busybox_rootfs, ["true"], name="b2"), detach=True
        )
        == 0
    )
    libc.prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    assert flag.value == 0
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        assert f.read().split() == []
    box.kill("KILL", all=True)
    assert box.wait(timeout=10) == "stopped"  # nothing of its pid namespace is stuck


def test_exec_keywords_are_execs_flags(rt, tmp_path, busybox_rootfs):
    """exec's keywords build the ProcessSpec the command line builds from its flags
    (ocirt/execspec.py), without the command line."""
    box = rt.create(f"api-{uuid.uuid4().hex[:8]}", bundle(tmp_path, busybox_rootfs, ["sleep", "300"]))
    box.start()
    assert (
        box.exec(
            ["sh", "-c", 'test "$(id -u):$(id -g)" = 1000:1000 && id -G | grep -qw 44'],
            user="1000:1000",
            additional_gids=[44],
        )
        == 0
    )
    assert box.exec(["sh", "-c", "grep -q '^NoNewPrivs:.*1' /proc/self/status"], no_new_privileges=True) == 0
    assert box.exec(process={"args": ["/bin/sh", "-c", "exit 4"], "cwd": "/"}) == 4
    with pytest.raises(ocirt.OcirtError, match=r"invalid --user 'nobody'"):
        box.exec(["true"], user="nobody")
    with pytest.raises(ocirt.OcirtError, match="process args cannot be empty"):
        box.exec([])
    with pytest.raises(ocirt.OcirtError, match=r"^process.json: /args: ('args' )?is required$"):
        box.exec(process={"cwd": "/"})
    box.kill("KILL", all=True)
    box.wait(timeout=10)
    box.delete()


def test_kill_and_delete_errors(rt, tmp_path):
    box = ocirt.Container(rt, "api-nosuch")
    with pytest.raises(ocirt.OcirtError, match='unknown signal "NOPE"'):
        box.kill("NOPE")
    with pytest.raises(ocirt.OcirtError, match="does not exist"):
        box.delete(force=True)  # nothing at all: still an error for the API
    os.makedirs(os.path.join(rt.root, "api-half"))  # a create killed before state.json
    ocirt.Container(rt, "api-half").delete(force=True)
    assert not os.path.exists(os.path.join(rt.root, "api-half"))
