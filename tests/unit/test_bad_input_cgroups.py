"""Bad cgroup input without a kernel: `unified` keys naming cgroup core files, a cgroupsPath
through a cgroup file (the directories made in other hierarchies go), and what a damaged
state.json still tells of the cgroup."""

import json
import os

import pytest

from ocirt.cgroups.cgroup_v1 import V1Cgroup
from ocirt.cgroups.layout import Layout
from ocirt.cgroups.resources import Resources, parse_device_rules
from ocirt.cgroups.update import from_json
from ocirt.errors import ConfigError, OcirtError
from ocirt.state import salvage_fields, state_damage

REFUSED = [
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.kill",
    "cgroup.subtree_control",
    "cgroup.type",
    "cgroup.freeze",
    "cgroup.events",
    "cgroup.controllers",
    "cgroup.stat",
]


@pytest.mark.parametrize("key", REFUSED)
def test_a_cgroup_core_file_is_not_a_resource(key):
    with pytest.raises(ConfigError) as e:
        Resources.parse({"unified": {"pids.max": "10", key: "1"}})
    assert e.value.pointer == f"/linux/resources/unified/{key}"
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("key", ["cgroup.max.depth", "cgroup.max.descendants", "cgroup.pressure"])
def test_the_cgroup_core_settings_stay(key):
    assert Resources.parse({"unified": {key: "1"}}).unified == {key: "1"}


@pytest.mark.parametrize("key", ["cgroup.procs", "cgroup.kill"])
def test_update_refuses_a_cgroup_core_file(key):
    with pytest.raises(OcirtError, match=f"^resources: /unified/{key}: "):
        from_json(json.dumps({"unified": {key: "1"}}))


def _layout(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    os.mkdir(a)
    os.mkdir(b)
    return Layout("v1", {"cpu": a, "memory": b}, roots={a: "/", b: "/"}), a, b


def test_a_create_failing_in_one_hierarchy_removes_what_it_made_in_the_others(tmp_path):
    layout, a, b = _layout(tmp_path)
    os.makedirs(f"{b}/x/H")
    open(f"{b}/x/H/cgroup.procs", "w").close()  # a file of the cgroup, in one hierarchy only
    cg = V1Cgroup.for_container(layout, "/x/H/cgroup.procs", "id")
    with pytest.raises(ConfigError) as e:
        cg.create()
    assert e.value.pointer == "/linux/cgroupsPath" and "cgroup.procs" in e.value.rule
    assert os.listdir(a) == []  # x, x/H, x/H/cgroup.procs were made there, and removed
    assert os.path.isfile(f"{b}/x/H/cgroup.procs")  # what was there before stays
    assert cg.created == []


def test_a_container_id_naming_a_cgroup_file(tmp_path, monkeypatch):
    layout, a, b = _layout(tmp_path)
    open(f"{b}/cgroup.procs", "w").close()
    cg = V1Cgroup.for_container(layout, None, "cgroup.procs", own={"cpu": "/", "memory": "/"})
    with pytest.raises(OcirtError, match="cgroup.procs' is a file of the cgroup"):
        cg.create()
    assert os.listdir(a) == []


CG = {
    "version": 1,
    "kind": "v1",
    "cgroupsPath": "/x/c",
    "paths": {"cpu": "/sys/fs/cgroup/cpu/x/c"},
    "unified": None,
    "created": ["/sys/fs/cgroup/cpu/x", "/sys/fs/cgroup/cpu/x/c"],
}


def test_a_state_with_a_pid_and_no_cgroup_record_is_damaged():
    assert state_damage({"id": "c", "bundle": "/b", "pid": 5}, "c") == "'cgroup' is missing"
    assert state_damage({"id": "c", "bundle": "/b"}, "c") == ""  # made by hand, never created


@pytest.mark.parametrize("created", [None, ["/", 1], "x"])
def test_a_damaged_created_keeps_where_the_cgroup_is(created):
    data = {"id": "c", "bundle": "/nonexistent", "pid": 5, "cgroup": {**CG, "created": created}}
    got = salvage_fields(data)["cgroup"]
    assert got["paths"] == CG["paths"] and not got.get("created")


@pytest.mark.parametrize(
    "cgroup",
    [None, ["/sys/fs/cgroup"], 7, {"kind": "v1", "paths": {"cpu": "/"}}, {"kind": "zzz", "paths": {}}],
)
def test_a_damaged_cgroup_record_falls_back_to_the_config(tmp_path, cgroup):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": "/ocirt-unit/c"}}))
    data = {"id": "c", "bundle": str(bundle), "pid": 5, "cgroup": cgroup}
    got = salvage_fields(data)["cgroup"]
    assert got["cgroupsPath"] == "/ocirt-unit/c" and got["created"] == []
    assert all(d.endswith("/ocirt-unit/c") for d in got["paths"].values())


def test_a_cgroup_record_of_an_unknown_kind_is_damage():
    data = {"id": "c", "bundle": "/b", "pid": 5, "cgroup": {"kind": "zzz", "paths": {}}}
    assert state_damage(data, "c") == "'cgroup' is not a cgroup record"


def test_nothing_is_made_up_without_a_config(tmp_path):
    data = {"id": "c", "bundle": str(tmp_path), "pid": 5, "cgroup": None}
    assert salvage_fields(data) == {"pid": 5}
    data["systemd_cgroup"] = True
    (tmp_path / "config.json").write_text("{}")
    assert "cgroup" not in salvage_fields(data)  # a systemd unit is not found by its path


@pytest.mark.parametrize(
    "field,value", [("major", -7), ("major", 1 << 32), ("minor", -2), ("minor", 1 << 40)]
)
def test_device_rule_numbers_outside_u32_are_refused(field, value):
    rule = {"allow": True, "type": "c", "major": 1, "minor": 3, field: value}
    with pytest.raises(ConfigError) as e:
        parse_device_rules([rule])
    assert e.value.pointer == f"/linux/resources/devices/0/{field}"


def test_device_rule_minus_one_is_any():
    (rule,) = parse_device_rules([{"allow": True, "type": "c", "major": -1, "minor": -1}])
    assert rule.major is None and rule.minor is None


@pytest.mark.parametrize("unit", ["sshd.service", "x.mount", "", "scope"])
def test_a_systemd_record_naming_no_scope_or_slice_is_damage(unit):
    """delete stops the record's unit: a damaged one must not name a service of the host's."""
    record = {**CG, "systemd": {"unit": unit, "slice": "system.slice"}}
    data = {"id": "c", "bundle": "/b", "pid": 5, "cgroup": record}
    assert state_damage(data, "c") == "'cgroup' is not a cgroup record"
    for good in ("ocirt-c.scope", "pod1.slice"):
        record["systemd"]["unit"] = good
        assert state_damage(data, "c") == ""
