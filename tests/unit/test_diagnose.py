"""`ocirt check`: every problem at once, schema and host, with pointers; exit 0 only when create
would pass."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def base_config(rootfs) -> dict:
    with open(os.path.join(REPO, "bundles", "runc-spec.json")) as f:
        config = json.load(f)
    config["root"]["path"] = str(rootfs)
    config["process"]["terminal"] = False
    return config


def check(tmp_path, config, *flags):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "ocirt", "check", "--bundle", str(tmp_path), *flags],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.fixture
def rootfs(tmp_path):
    d = tmp_path / "rootfs"
    d.mkdir()
    return d


def test_a_good_config_passes(tmp_path, rootfs):
    p = check(tmp_path, base_config(rootfs))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 error(s)" in p.stdout


def test_five_schema_problems_are_all_listed(tmp_path, rootfs):
    config = base_config(rootfs)
    config["process"]["args"] = []
    config["process"]["user"]["uid"] = -1
    config["hostname"] = 7
    config["linux"]["namespaces"].append({"type": "bogus"})
    config["mounts"][0]["destination"] = 5
    p = check(tmp_path, config, "--format", "json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    pointers = {x["pointer"] for x in doc["problems"] if x["level"] == "error"}
    assert {"/process/args", "/process/user/uid", "/hostname", "/mounts/0/destination"} <= pointers
    assert any(x.startswith("/linux/namespaces/") for x in pointers), pointers
    assert doc["ok"] is False


def test_host_problems_are_all_listed(tmp_path, rootfs):
    config = base_config(rootfs)
    config["linux"]["intelRdt"] = {"closID": "x"}
    config["linux"]["netDevices"] = {"ocirtnodev0": {}}
    config["linux"]["resources"] = {"memory": {"kernel": 1 << 20}}
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall_ocirt"], "action": "SCMP_ACT_ERRNO"}],
    }
    config["root"]["path"] = str(tmp_path / "missing")
    p = check(tmp_path, config)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    for pointer in (
        "/linux/intelRdt",
        "/linux/netDevices/ocirtnodev0",
        "/root/path",
        "/linux/resources/memory/kernel",
        "/linux/seccomp/syscalls",
    ):
        assert any(f": {pointer}: " in ln for ln in lines), (pointer, p.stdout)


def test_not_json_is_one_problem(tmp_path):
    (tmp_path / "config.json").write_text("{")
    p = subprocess.run(
        [sys.executable, "-m", "ocirt", "check", "--bundle", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert p.returncode == 1
    assert "invalid JSON" in p.stdout and "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "mutate,pointer",
    [
        (lambda c: c.update(hostname="a\0b"), "/hostname"),
        (lambda c: c.update(hostname="h" * 65), "/hostname"),
        (lambda c: c["linux"].update(cgroupsPath="/"), "/linux/cgroupsPath"),
        (
            lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "c", "major": 4096, "minor": 0}]),
            "/linux/devices/0/major",
        ),
        (
            lambda c: c["linux"].update(
                namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
            ),
            "/mounts/0",
        ),
        (lambda c: c["root"].update(path="root\0fs"), "/root/path"),
    ],
    ids=["nul", "long-hostname", "cgroups-root", "device-major", "mounts-without-mount-ns", "nul-root"],
)
def test_check_refuses_what_create_refuses(tmp_path, rootfs, mutate, pointer):
    """`ocirt check` says no wherever create's own checks of config.json would (they share them)."""
    config = base_config(rootfs)
    mutate(config)
    p = check(tmp_path, config, "--format", "json")
    assert p.returncode == 1, p.stdout + p.stderr
    pointers = {x["pointer"] for x in json.loads(p.stdout)["problems"] if x["level"] == "error"}
    assert any(x.startswith(pointer) for x in pointers), pointers
