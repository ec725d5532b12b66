"""state, list and events in runc's shapes, without a container (no root needed)."""

import json

import pytest

from ocirt import events, jsonio
from ocirt.commands import list as list_cmd
from ocirt.commands.state import runc_state
from ocirt.state import ContainerState, Status


@pytest.mark.parametrize(
    "stored,printed",
    [
        ("2026-12-04T23:31:12.118208351Z", "2026-12-04T23:31:12.118208351Z"),
        ("2026-12-04T23:31:12.118208350Z", "2026-12-04T23:31:12.11820835Z"),
        ("2026-12-04T23:31:12.100000000Z", "2026-12-04T23:31:12.1Z"),
        ("2026-12-04T23:31:12.000000000Z", "2026-12-04T23:31:12Z"),
        ("2026-12-04T23:31:12Z", "2026-12-04T23:31:12Z"),
        ("", ""),
    ],
)
def test_created_as_go_prints_a_time(stored, printed):
    assert jsonio.go_time(stored) == printed
    st = ContainerState(id="c", bundle="/b", pid=7, rootfs="/r", created=stored)
    assert runc_state(st, st.oci(Status.RUNNING))["created"] == printed


def test_state_in_runcs_order():
    st = ContainerState(
        id="c",
        bundle="/b",
        pid=7,
        rootfs="/r",
        created="2026-01-01T00:00:00.5Z",
        annotations={"z": "1", "a": "2"},
    )
    out = runc_state(st, st.oci(Status.RUNNING))
    assert list(out) == [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "annotations",
        "owner",
    ]
    assert list(out["annotations"]) == ["a", "z"] and out["owner"] == ""
    stopped = runc_state(st, st.oci(Status.STOPPED))
    assert stopped["pid"] == 0 and stopped["status"] == "stopped"
    plain = ContainerState(id="c", bundle="/b")
    assert "annotations" not in runc_state(plain, plain.oci(Status.CREATED))


def test_list_table_is_gos_tabwriter():
    rows = [list_cmd.HEADER, ("a-longer-container-id", "12345", "running", "/b", "2026-01-01T00:00:00Z", "")]
    # widths: 21 + 3 = 24 (ID), 12 (PID, STATUS, BUNDLE: at least 12), 20 + 3 = 23 (CREATED)
    assert list_cmd.table(rows) == (
        "ID"
        + " " * 22
        + "PID"
        + " " * 9
        + "STATUS"
        + " " * 6
        + "BUNDLE"
        + " " * 6
        + "CREATED"
        + " " * 16
        + "OWNER\n"
        + "a-longer-container-id"
        + " " * 3
        + "12345"
        + " " * 7
        + "running"
        + " " * 5
        + "/b"
        + " " * 10
        + "2026-01-01T00:00:00Z"
        + " " * 3
        + "\n"
    )


def test_list_json_is_gos_encoding():
    value = [{"id": "x", "bundle": "/a<b>&c\u2028", "annotations": {"k": "é"}}]
    text = jsonio.go_dumps(value)
    assert text == '[{"id":"x","bundle":"/a\\u003cb\\u003e\\u0026c\\u2028","annotations":{"k":"é"}}]'
    assert json.loads(text) == value
    assert jsonio.go_dumps(None) == "null"


# -- events: an OOM kill that stops the container ---------------------------------------------------


class _Cgroup:
    kind = "v2"

    def __init__(self, unified):
        self.unified = unified

    def stats(self):
        return {}


class _OomAtStop:
    """A container whose init is OOM-killed between watch's read of the counter and its status
    check: the counter grows, then the container is stopped."""

    def __init__(self, tmp_path):
        self.state = ContainerState(id="box", bundle="/")
        self.sd = type("SD", (), {"state_file": str(tmp_path / "state.json")})()
        self.events_file = tmp_path / "memory.events"

    def status(self):
        self.events_file.write_text("oom 1\n")
        return Status.STOPPED


def test_watch_reports_the_oom_kill_that_stopped_the_container(tmp_path):
    (tmp_path / "memory.events").write_text("oom 0\n")
    (tmp_path / "state.json").write_text("{}")
    seen = list(events.watch(_OomAtStop(tmp_path), _Cgroup(str(tmp_path)), 3600.0))
    assert seen == [{"type": "oom", "id": "box"}]


# -- events --interval: Go's Duration, an int64 of nanoseconds ---------------------------------------


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("2562047h47m16.854775807s", 9223372036.854775807),
        ("-2562047h47m16.854775808s", -9223372036.854775808),
    ],
)
def test_interval_at_gos_limits(text, seconds):
    from ocirt.commands.events import parse_duration

    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["2562048h", "2562047h47m16.854775808s", "9" * 30 + "ns", "1." + "9" * 400 + "x"]
)
def test_interval_past_gos_limits(text):
    from ocirt.commands.events import parse_duration

    with pytest.raises(ValueError):
        parse_duration(text)
