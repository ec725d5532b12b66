"""Shared fixtures of the unit tests."""

import json
import os

import pytest

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "bundles", "runc-spec.json")


@pytest.fixture
def plan_bundle(tmp_path):
    """A bundle for `ocirt plan`: runc's default config.json and a rootfs with only /bin/sh,
    with a cgroupsPath no container has. A plan looks at the host (a cgroup directory already
    there is not made, an existing one is bound as it is), and runc's default has none, so that
    the plan of `c1` was of /c1: a container c1 running meanwhile (another test's, anyone's) made
    plan tests fail."""
    (tmp_path / "rootfs" / "bin").mkdir(parents=True)
    sh = tmp_path / "rootfs" / "bin" / "sh"
    sh.write_text("#!/bin/true\n")
    sh.chmod(0o755)
    with open(SPEC) as f:
        config = json.load(f)
    config["linux"]["cgroupsPath"] = f"/ocirt-plan-test-{tmp_path.name}"
    (tmp_path / "config.json").write_text(json.dumps(config, indent=2))
    return tmp_path
