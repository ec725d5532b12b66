"""Shared fixtures of the unit tests."""

import os
import shutil

import pytest

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "bundles", "runc-spec.json")


@pytest.fixture
def plan_bundle(tmp_path):
    """A bundle for `ocirt plan`: runc's default config.json and a rootfs with only /bin/sh."""
    (tmp_path / "rootfs" / "bin").mkdir(parents=True)
    sh = tmp_path / "rootfs" / "bin" / "sh"
    sh.write_text("#!/bin/true\n")
    sh.chmod(0o755)
    shutil.copy(SPEC, tmp_path / "config.json")
    return tmp_path
