"""Configs the schema takes with values a fuzzer found odd, where ocirt's own words are checked
(the cases both runtimes share are in conformance/test_odd_config_values.py): a one-line error
that says what is wrong, nothing left behind."""

import json
import os
import uuid

import pytest
from cli_helpers import OCIRT, make_bundle, remove_cgroup_parent, run_err_to_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

PARENT = "ocirt-test-semantics"


@pytest.fixture(scope="module", autouse=True)
def remove_parent_cgroup():
    yield
    remove_cgroup_parent(PARENT)


@pytest.fixture
def run(tmp_path, busybox_rootfs):
    """run(mutate) -> the CompletedProcess of `run` of a bundle edited by mutate(config); at the
    end, nothing of it may be left."""
    cid = f"sem-{uuid.uuid4().hex[:8]}"
    root = str(tmp_path / "root")

    def start(mutate):
        bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["true"], terminal=False)
        path = os.path.join(bundle, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["linux"]["cgroupsPath"] = f"/{PARENT}/{cid}"
        mutate(config)
        with open(path, "w") as f:
            json.dump(config, f)
        return run_err_to_file([*OCIRT, "--root", root, "run", "-b", bundle, cid], root + "-stderr")

    yield start
    run_err_to_file([*OCIRT, "--root", root, "delete", "--force", cid], root + "-stderr")
    assert not os.listdir(root)
    assert not [
        t for t in os.listdir("/sys/fs/cgroup") if os.path.isdir(f"/sys/fs/cgroup/{t}/{PARENT}/{cid}")
    ]


def test_bind_mount_without_a_source(run):
    def mutate(c):
        c["mounts"].append({"destination": "/dev/x", "type": "bind", "source": "", "options": ["rbind"]})

    p = run(mutate)
    assert p.returncode != 0
    assert p.stderr.count("\n") == 1 and "/mounts/7/source: a bind mount needs a source" in p.stderr, p.stderr


def test_execve_a_seccomp_rule_makes_return_zero(run):
    """errnoRet 0: execve "succeeds" and returns, the program never runs."""
    rule = {"names": ["execve"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0}

    def mutate(c):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}

    p = run(mutate)
    assert p.returncode != 0
    # the init's own line on the container's stderr, which is run's (run's own: --log only)
    assert p.stderr == "ocirt init: exec /bin/true: execve returned without running it\n", p.stderr
    assert "Errno" not in p.stderr and "internal" not in p.stderr


@pytest.mark.parametrize("limit", [1, 0])
def test_pids_limit_below_two_with_a_user_namespace(run, limit):
    """Stage 1 is in the cgroup when it forks the init (a user namespace needs both): a limit
    that fork does not fit is written once the init is forked (create.late_pids), and the
    init runs under it (`true` forks nothing). Root mapped to itself: the rootfs is in a
    directory only the host's root may search."""
    ids = [{"containerID": 0, "hostID": 0, "size": 65536}]

    def mutate(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = c["linux"]["gidMappings"] = ids
        c["linux"]["resources"]["pids"] = {"limit": limit}

    p = run(mutate)
    assert p.returncode == 0 and not p.stderr, p.stderr
