import pytest

from ocirt import lsm
from ocirt.errors import ConfigError
from ocirt.kernel.fake import RecordingKernel


def test_asking_for_a_missing_lsm_fails_with_its_pointer(monkeypatch):
    monkeypatch.setattr(lsm, "apparmor_enabled", lambda: False)
    monkeypatch.setattr(lsm, "selinux_enabled", lambda: False)
    lsm.check({"process": {}})  # nothing asked: fine
    for config, pointer in (
        ({"process": {"apparmorProfile": "p"}}, "/process/apparmorProfile"),
        ({"process": {"selinuxLabel": "l"}}, "/process/selinuxLabel"),
        ({"linux": {"mountLabel": "m"}}, "/linux/mountLabel"),
    ):
        with pytest.raises(ConfigError) as e:
            lsm.check(config)
        assert e.value.pointer == pointer


def test_labels_are_written_for_exec(monkeypatch):
    kern = RecordingKernel()
    monkeypatch.setattr(lsm.paths, "exists", lambda p: True)
    lsm.apply_on_exec(kern, "docker-default", "system_u:system_r:container_t:s0")
    assert [c.args for c in kern.find("write_file")] == [
        ("/proc/self/attr/apparmor/exec", "exec docker-default"),
        ("/proc/self/attr/exec", "system_u:system_r:container_t:s0"),
    ]


def test_mount_label_goes_to_filesystems_that_take_one():
    assert lsm.mount_data("size=1k", "lbl", "tmpfs") == 'size=1k,context="lbl"'
    assert lsm.mount_data(None, "lbl", "proc") is None
    assert lsm.mount_data("x", "", "tmpfs") == "x"
