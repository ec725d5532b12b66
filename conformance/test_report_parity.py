"""The commands that read and report (state, list, ps, events), as runc 1.1.5 prints them: what
engines and scripts parse (JSON fields, their order, types and omitted-when-empty rules, list's
columns) and the one-line errors."""

import json
import os
import re

import pytest
from runtime import one_line, sh, wait_for

SLEEP = ["sleep", "1000"]
STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
# Go's time.RFC3339Nano: no trailing zeros in the fraction (no dot when it is all zeros)
GO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?(Z|[+-]\d\d:\d\d)$")


def message(p):
    """The msg of a failed command's one-line `level=error` output."""
    assert p.returncode != 0, f"the command succeeded: {p.stdout!r}"
    line = one_line(p.stderr)
    m = re.search(r'msg="(.*)"$', line)
    assert m, line
    return json.loads(f'"{m.group(1)}"')  # the text format quotes it as Go does


def go_compact(value):
    """json.Marshal's bytes for what json.loads made of them (no <, > or & in these values)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tabwriter(rows):
    """runc's list table: Go's tabwriter (minwidth 12, padding 3, blanks); last cell unpadded."""
    widths = [max([12] + [len(r[i]) + 3 for r in rows]) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] + "\n" for r in rows)


@pytest.fixture
def created(rt, make_bundle):
    b = make_bundle(SLEEP)
    p = rt.create(b.id, b)
    assert p.returncode == 0, p.stderr
    return b


@pytest.fixture
def stopped(rt, make_bundle):
    b = make_bundle(["true"])
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    rt.wait_status(b.id, "stopped")
    return b


# -- state ------------------------------------------------------------------------------------------


def test_state_has_runcs_fields_in_its_order(rt, created):
    """runtime.md's state (the state MAY include additional properties) with runc's rootfs,
    created and owner, in runc's order."""
    p = rt.state(created.id)
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert list(st) == STATE_KEYS
    assert st["id"] == created.id and st["status"] == "created"
    assert type(st["pid"]) is int and st["pid"] > 0
    assert os.path.realpath(st["rootfs"]) == os.path.realpath(created.rootfs)
    assert GO_TIME.match(st["created"]), st["created"]
    assert st["owner"] == ""


def test_state_of_a_stopped_container(rt, stopped):
    st = rt.state_json(stopped.id)
    assert list(st) == STATE_KEYS
    assert st["status"] == "stopped" and st["pid"] == 0


def test_state_and_list_agree_and_sort_annotations(rt, make_bundle):
    b = make_bundle(SLEEP, annotations={"z.last": "1", "a.first": "2", "m.middle": "3"})
    assert rt.create(b.id, b).returncode == 0
    st = rt.state_json(b.id)
    assert list(st) == STATE_KEYS[:-1] + ["annotations", "owner"]
    assert list(st["annotations"]) == ["a.first", "m.middle", "z.last"]  # a Go map: sorted
    (entry,) = json.loads(rt.list("json").stdout)
    assert entry["created"] == st["created"] and entry["rootfs"] == st["rootfs"]
    assert list(entry["annotations"]) == ["a.first", "m.middle", "z.last"]


# -- list -------------------------------------------------------------------------------------------


def test_list_json_is_one_compact_line_in_runcs_shape(rt, created, stopped):
    p = rt.list("json")
    assert p.returncode == 0, p.stderr
    entries = json.loads(p.stdout)
    assert p.stdout == go_compact(entries) + "\n"
    assert [e["id"] for e in entries] == sorted([created.id, stopped.id])
    for e in entries:
        assert list(e) == STATE_KEYS  # annotations: omitted when there are none
        assert GO_TIME.match(e["created"]), e["created"]
        assert e["owner"] == "root"
    by_id = {e["id"]: e for e in entries}
    assert by_id[stopped.id]["pid"] == 0 and by_id[stopped.id]["status"] == "stopped"
    assert by_id[created.id]["pid"] == rt.state_json(created.id)["pid"]


def test_list_json_of_no_container_is_null(rt):
    p = rt.list("json")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "null\n"


def test_list_table_is_laid_out_as_runcs(rt, make_bundle, created, stopped):
    wide = make_bundle(SLEEP)  # a bundle path longer than the others: its column widens
    os.rename(wide.path, wide.path + "-with-a-much-longer-name")
    wide.path += "-with-a-much-longer-name"
    assert rt.create(wide.id, wide).returncode == 0
    entries = json.loads(rt.list("json").stdout)
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(e["id"], str(e["pid"]), e["status"], e["bundle"], e["created"], e["owner"]) for e in entries]
    p = rt.list()
    assert p.returncode == 0, p.stderr
    assert p.stdout == tabwriter(rows)


def test_list_table_of_no_container(rt):
    assert rt.list().stdout == "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"


def test_list_owner_without_a_user_name(rt, created):
    """A state directory whose owner has no name: runc shows `#UID`."""
    os.chown(os.path.join(rt.root, created.id), 54321, -1)
    (entry,) = json.loads(rt.list("json").stdout)
    assert entry["owner"] == "#54321"


def test_list_bad_format(rt, created):
    p = rt.list("xml")
    assert message(p) == "invalid format option"
    assert p.returncode == 1 and p.stdout == ""
    p = rt.list("xml", quiet=True)  # --quiet wins, as in runc
    assert p.returncode == 0 and p.stdout == created.id + "\n"


def test_list_with_a_file_as_root(make_runtime, tmp_path):
    root = tmp_path / "root-file"
    root.write_text("")
    rt = make_runtime(root=str(root))
    for args in ([], ["--format", "json"], ["--quiet"]):
        p = rt("list", *args)
        assert p.returncode == 1 and p.stdout == ""
        assert message(p).endswith(f"{root}: not a directory")


# -- ps ---------------------------------------------------------------------------------------------


def test_ps_of_created_and_stopped_containers(rt, created, stopped):
    pid = rt.state_json(created.id)["pid"]
    assert rt("ps", "--format", "json", created.id).stdout == f"[{pid}]\n"
    assert rt("ps", "--format", "json", stopped.id).stdout == "null\n"  # Go's nil slice
    p = rt("ps", stopped.id)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]


def test_ps_options_after_the_id_go_to_ps(rt, started):
    b = started(SLEEP)
    pid = rt.state_json(b.id)["pid"]
    for args in (
        [b.id, "-o", "pid,comm"],
        ["--", b.id, "-o", "pid,comm"],
        ["-f", "table", b.id, "-o", "pid,comm"],
    ):
        p = rt("ps", *args)
        assert p.returncode == 0, p.stderr
        assert [ln.split() for ln in p.stdout.splitlines()] == [["PID", "COMMAND"], [str(pid), "sleep"]]
    p = rt("ps", b.id, "-f", "json")  # after the id: ps's own -f (then "json" is a bad format)
    assert p.returncode == 1 and message(p).startswith("exit status 1: ")


def test_ps_bad_format_and_missing_id(rt, created):
    assert message(rt("ps", "--format", "xml", created.id)) == "invalid format option"
    assert "container does not exist" in message(rt("ps", "nosuch"))


# -- events -----------------------------------------------------------------------------------------


def check_types(value, shape, where="data"):
    """value has shape's keys in shape's order, with shape's types (int, list, dict, None)."""
    if isinstance(shape, dict):
        assert isinstance(value, dict), where
        assert list(value) == list(shape), f"{where}: {list(value)}"
        for k, v in shape.items():
            check_types(value[k], v, f"{where}.{k}")
    elif shape is None:
        assert value is None, where
    else:
        assert type(value) is shape, f"{where}: {value!r}"


def test_events_stats_fields_and_types(rt, started):
    b = started(SLEEP, linux={"resources": {"pids": {"limit": 64}, "memory": {"limit": 64 << 20}}})
    p = rt("events", "--stats", b.id)
    assert p.returncode == 0, p.stderr
    (line,) = p.stdout.splitlines()
    ev = json.loads(line)
    assert line == go_compact(ev)
    assert list(ev) == ["type", "id", "data"] and ev["type"] == "stats" and ev["id"] == b.id
    data = ev["data"]
    assert list(data) == [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ]
    check_types(data["pids"], {"current": int, "limit": int}, "pids")
    assert data["pids"] == {"current": 1, "limit": 64}
    assert list(data["cpu"]) == ["usage", "throttling"]
    usage = data["cpu"]["usage"]
    assert list(usage)[0] == "total" and list(usage)[-2:] == ["kernel", "user"]
    assert all(type(usage[k]) is int for k in ("total", "kernel", "user"))
    memory = data["memory"]
    for key in ("usage", "swap", "kernel", "kernelTCP"):
        entry = memory[key]
        assert list(entry)[0] == "limit" and list(entry)[-1] == "failcnt", (key, entry)
        assert all(type(v) is int for v in entry.values()), (key, entry)
    assert memory["usage"]["limit"] == 64 << 20
    assert data["intel_rdt"] == {} and data["network_interfaces"] is None
    assert isinstance(data["blkio"], dict) and isinstance(data["hugetlb"], dict)


def test_events_errors(rt, created, stopped):
    assert message(rt("events", "--interval", "0", created.id)) == "duration interval must be greater than 0"
    assert message(rt("events", "--stats", "--interval", "-1s", created.id)) == (
        "duration interval must be greater than 0"
    )
    assert message(rt("events", "--stats", stopped.id)) == f"container with id {stopped.id} is not running"
    assert "container does not exist" in message(rt("events", "--stats", "nosuch"))


def test_events_interval_past_gos_duration(rt, created):
    """--interval is a Go duration: an int64 of nanoseconds (about 2562047 hours) at most."""
    for interval in ("2562048h", "2562047h47m16.854775808s", "9999999999999999999ns"):
        p = rt("events", "--stats", "--interval", interval, created.id)
        assert message(p) == f'invalid value "{interval}" for flag -interval: parse error'
    for interval in ("2562047h", "2562047h47m16.854775807s", ".5s", "5.s", "1h2m"):
        p = rt("events", "--stats", "--interval", interval, created.id)
        assert p.returncode == 0, (interval, p.stderr)
        assert json.loads(p.stdout)["type"] == "stats"


def test_events_reports_the_oom_kill_that_stops_the_container(rt, make_bundle, tmp_path):
    """The init itself OOM-killed: its oom event comes out although the container stops with it
    (runc streams until the container is deleted, ocirt until it stops)."""
    go = tmp_path / "go"
    go.mkdir()
    b = make_bundle(
        sh("while [ ! -e /tmp/go/now ]; do sleep 0.05; done; exec tail /dev/zero"),
        linux={"resources": {"memory": {"limit": 32 << 20, "swap": 32 << 20}}},
        mutate=lambda cfg: cfg["mounts"].append(
            {"destination": "/tmp/go", "type": "bind", "source": str(go), "options": ["rbind", "ro"]}
        ),
    )
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    events = rt.popen("events", "--interval", "50ms", b.id)
    try:
        log = events.out_file

        def lines():
            log.seek(0)
            return log.read().decode().splitlines()

        wait_for(lambda: lines(), what="the first stats event")  # watching: the OOM count is read
        (go / "now").write_text("")
        rt.wait_status(b.id, "stopped", timeout=30)
        wait_for(
            lambda: {"type": "oom", "id": b.id} in [json.loads(x) for x in lines()], what="the oom event"
        )
    finally:
        rt.delete(b.id, force=True)  # runc's stream ends with the container's cgroup
        try:
            events.wait(timeout=20)
        finally:
            if events.poll() is None:
                events.kill()
                events.wait()
            events.err_file.close()
            events.out_file.close()


# -- features ---------------------------------------------------------------------------------------


@pytest.mark.runc_deviates(
    "runc 1.1.5 predates potentiallyUnsafeConfigAnnotations (features.md) although it honours "
    "org.systemd.property.* (systemd unit properties) and org.criu.config (CRIU's configuration)"
)
def test_features_lists_the_annotations_that_change_the_runtime(rt):
    """features.md: the annotations of config.json that may change the runtime's behaviour (a
    value ending in "." is a prefix). A runc-compatible runtime honours runc's two."""
    p = rt("features")
    assert p.returncode == 0, p.stderr
    unsafe = json.loads(p.stdout).get("potentiallyUnsafeConfigAnnotations")
    assert isinstance(unsafe, list) and all(isinstance(a, str) for a in unsafe), unsafe
    assert {"org.systemd.property.", "org.criu.config"} <= set(unsafe)
