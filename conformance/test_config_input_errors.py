"""Bad input a fuzzer found: ids the kernel reads as "unchanged", too many groups, device numbers
beyond a dev_t, names beyond the kernel's 64 bytes, JSON numbers no config field can hold, and
exec's --user and process file. Each must fail with one line (ocirt: naming the field) and leave
nothing behind; none may run the process as root."""

import json
import os

import pytest
from runtime import assert_failed_cleanly, one_line

CAST = "runc 1.1.5 casts the number to its type and makes another device: "


def put(*path, value):
    def mutate(c):
        *parents, last = path
        for k in parents:
            c = c.setdefault(k, {})
        c[last] = value

    return mutate


def device(major, minor):
    return put("linux", "devices", value=[{"path": "/dev/x", "type": "c", "major": major, "minor": minor}])


CASES = [
    ("uid-minus-one", put("process", "user", "uid", value=4294967295), "/process/user/uid", None),
    ("gid-minus-one", put("process", "user", "gid", value=4294967295), "/process/user/gid", None),
    (
        "additional-gid-minus-one",
        put("process", "user", "additionalGids", value=[1, 4294967295]),
        "/process/user/additionalGids/1",
        None,
    ),
    (
        "too-many-groups",
        put("process", "user", "additionalGids", value=list(range(70000))),
        "/process/user/additionalGids",
        None,
    ),
    ("device-major-negative", device(-1, 3), "/linux/devices/0/major", None),
    ("device-major-huge", device(2**40, 3), "/linux/devices/0/major", CAST + "0:3"),
    ("device-major-13-bits", device(4096, 3), "/linux/devices/0/major", CAST + "0:3"),
    ("device-minor-negative", device(1, -1), "/linux/devices/0/minor", None),
    ("device-minor-21-bits", device(1, 2**20), "/linux/devices/0/minor", CAST + "1:0"),
    ("device-minor-huge", device(1, 2**32 + 3), "/linux/devices/0/minor", CAST + "1:3"),
    ("hostname-65-bytes", put("hostname", value="h" * 65), "/hostname", None),
    (
        "domainname-65-bytes",
        put("domainname", value="\u00e9" * 33),
        "/domainname",
        "runc 1.1.5 does not set domainname",
    ),
]


@pytest.mark.parametrize(
    "mutate,pointer",
    [
        pytest.param(m, ptr, id=cid, marks=[pytest.mark.runc_deviates(dev)] if dev else [])
        for cid, m, ptr, dev in CASES
    ],
)
def test_refused(rt, make_bundle, mutate, pointer):
    b = make_bundle(["id"], tmp=False, mutate=mutate)
    p = rt.run(b.id, b)
    assert "uid=0" not in p.stdout
    assert_failed_cleanly(rt, b, p, pointer)


@pytest.mark.parametrize(
    "literal,what",
    [("1e400", "number out of range"), ("NaN", "NaN"), ("-Infinity", "-Infinity"), ("9" * 5000, "digits")],
)
def test_json_number_refused_where_it_is(rt, make_bundle, literal, what):
    b = make_bundle(["true"], tmp=False)
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": "HARD"}]
    b.save()
    path = os.path.join(b.path, "config.json")
    with open(path) as f:
        text = f.read()
    line = text[: text.index('"HARD"')].count("\n") + 1
    with open(path, "w") as f:
        f.write(text.replace('"HARD"', literal))
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p)
    if rt.is_ocirt:
        error = one_line(p.stderr)
        assert f"line {line} column " in error and what in error, error
        assert "sys." not in error


# ---------------------------------------------------------------- exec


@pytest.mark.parametrize(
    "user",
    [
        "-1",
        "4294967295",
        "0:4294967295",
        pytest.param(
            "1099511627776",
            marks=pytest.mark.runc_deviates("runc 1.1.5 casts 2**40 to a uint32: runs the process as uid 0"),
        ),
    ],
)
def test_exec_user_out_of_range(rt, started, user):
    b = started()
    p = rt("exec", "--user", user, b.id, "id")
    assert p.returncode != 0 and "uid=0" not in p.stdout, p.stdout
    error = one_line(p.stderr)
    if rt.is_ocirt:
        assert "--user" in error, error


def exec_process_file(rt, b, tmp_path, proc):
    path = tmp_path / "process.json"
    doc = {"args": ["id"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
    if isinstance(proc, bytes):
        path.write_bytes(proc)
    else:
        path.write_text(json.dumps({**doc, **proc}))
    return rt("exec", "--process", str(path), b.id)


@pytest.mark.parametrize(
    "proc,where",
    [
        ({"user": {"uid": 4294967295, "gid": 0}}, "process.json: /user/uid: "),
        (
            {"user": {"uid": 0, "gid": 0, "additionalGids": [4294967295]}},
            "process.json: /user/additionalGids/0: ",
        ),
        ({"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}, "process.json: /rlimits/0/type: "),
        ({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]}, "process.json: /rlimits/0: "),
        ({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1e400}]}, "invalid JSON: line 1 column "),
        pytest.param(
            b'{"args": ["true", "\xff"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}',
            "invalid JSON: line 1 column 20: not UTF-8",
            marks=pytest.mark.runc_deviates("runc 1.1.5 reads bytes that are not UTF-8 as U+FFFD"),
        ),
    ],
)
def test_exec_process_file_refused(rt, started, tmp_path, proc, where):
    b = started()
    p = exec_process_file(rt, b, tmp_path, proc)
    assert p.returncode != 0 and "uid=0" not in p.stdout, p.stdout
    error = one_line(p.stderr)
    if rt.is_ocirt:
        assert where in error and "config.json" not in error, error
