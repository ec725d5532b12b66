"""Property-based tests (hypothesis): on any input every command ends with exit 0 or a one-line
error, never a traceback or a hang, and leaves nothing behind.

- any bytes as JSON: a value or a JSONError (with line and column), nothing else;
- generated configs (a valid config with members replaced by generated JSON, NUL bytes, lone
  surrogates, huge numbers...): `validate`, `ocirt plan`, and (root) `ocirt create` then
  `delete --force`;
- damaged state.json files (truncated, members replaced, members added, bytes): state, list,
  kill, start, delete, pause, resume, ps, update, events and `delete --force`.

The examples are derandomized (the same on every run) and bounded, for CI. A longer run, by
hand: OCIRT_HYPOTHESIS=long pytest tests/test_properties.py (3000 cases each, or
OCIRT_HYPOTHESIS_EXAMPLES).
"""

import contextlib
import copy
import io
import json
import os
import subprocess
import uuid

import pytest
from cli_helpers import OCIRT, REPO, remove_cgroup_parent, run_err_to_file

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st

from ocirt import cli, jsonio  # noqa: E402
from ocirt.errors import ConfigError  # noqa: E402
from ocirt.validate import validate  # noqa: E402

_COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=3000, **_COMMON)
PROFILE = os.environ.get("OCIRT_HYPOTHESIS", "ci")
LONG = PROFILE == "long"


def examples(ci: int):
    """`ci` derandomized examples in CI; 3000 random ones with OCIRT_HYPOTHESIS=long."""
    count = int(os.environ.get("OCIRT_HYPOTHESIS_EXAMPLES", 3000)) if LONG else ci
    return settings(settings.get_profile(PROFILE), max_examples=count)


PARENT = "ocirt-test-props"
with open(os.path.join(REPO, "bundles", "runc-spec.json")) as _f:
    BASE = json.load(_f)

# -- strategies -------------------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "\0",
            "a\0b",
            "\ud800",
            "/",
            "..",
            "../../etc",
            "/proc/self",
            "\n",
            "CAP_SYS_ADMIN",
            "RLIMIT_NOFILE",
            "PATH=/bin",
            "-1",
            "1e999",
        ]
    ),
    st.integers(60000, 70000).map(lambda n: "x" * n),  # over a 64 KiB message
)
nasty_number = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), nasty_number, nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=12,
)


def _paths(value, prefix=()):
    """Every member path of a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


EXTRA_PATHS = [
    ("hooks",),
    ("hooks", "prestart"),
    ("linux", "sysctl"),
    ("linux", "seccomp"),
    ("linux", "resources", "memory"),
    ("linux", "resources", "cpu"),
    ("linux", "resources", "pids"),
    ("process", "user", "additionalGids"),
    ("linux", "uidMappings"),
    ("linux", "timeOffsets"),
    ("linux", "personality"),
    ("process", "ioPriority"),
    ("process", "scheduler"),
    ("linux", "intelRdt"),
    ("linux", "memoryPolicy"),
    ("annotations",),
    ("domainname",),
    ("linux", "devices"),
]
ALL_PATHS = sorted(set(_paths(BASE)) | set(EXTRA_PATHS), key=lambda p: [str(x) for x in p])


def _set(config, path, value):
    node = config
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return
        if not isinstance(node, (dict, list)):
            return
    if not path:
        return
    if isinstance(node, dict):
        node[path[-1]] = value
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        node[path[-1]] = value


@st.composite
def configs(draw, paths=ALL_PATHS):
    """A valid config with 1 to 4 members replaced (or deleted) by generated values."""
    config = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        if draw(st.integers(0, 9)) == 0 and path:
            parent = config
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            continue
        _set(config, path, draw(json_values))
    return config


def config_bytes(config) -> bytes:
    """JSON of `config` (lone surrogates kept as their escapes)."""
    return json.dumps(config).encode()


@st.composite
def damaged_json(draw, text: bytes):
    """`text` damaged: truncated, bytes changed, or replaced by generated bytes."""
    how = draw(st.sampled_from(["truncate", "flip", "insert", "bytes"]))
    if how == "truncate":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    if how == "bytes":
        return draw(st.binary(max_size=200))
    at = draw(st.integers(0, len(text)))
    chunk = draw(
        st.sampled_from(
            [b",", b"}", b"]", b"[", b"{", b'"', b"\\", b"\0", b"\xff", b"[" * 5000, b"1e999999", b"-", b" "]
        )
    )
    if how == "flip":
        return text[:at] + chunk + text[at + 1 :]
    return text[:at] + chunk + text[at:]


# -- JSON and validation, in-process ----------------------------------------------------------


@examples(300)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        json_values.map(config_bytes).flatmap(lambda b: damaged_json(b)),
    )
)
def test_jsonio_gives_a_value_or_a_json_error(data):
    try:
        jsonio.loads(data)
    except jsonio.JSONError as e:
        assert e.lineno >= 1 and e.colno >= 1
        assert "\n" not in str(e)


@examples(300)
@given(configs())
def test_validate_accepts_or_names_a_pointer(config):
    try:
        validate(jsonio.loads(config_bytes(config)))
    except ConfigError as e:
        assert e.pointer.startswith("/")
        assert "\n" not in str(e)


# -- ocirt plan -------------------------------------------------------------------------------


def run_main(argv):
    """cli.main in this process: (code, stdout, stderr); an exception escaping it fails."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def plan_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan")
    os.makedirs(path / "rootfs" / "bin", exist_ok=True)
    return path


@examples(60)
@given(
    config=st.one_of(
        configs().map(config_bytes), st.just(config_bytes(BASE)).flatmap(lambda b: damaged_json(b))
    )
)
def test_plan_ends_in_a_plan_or_one_line(plan_bundle, config):
    with open(plan_bundle / "config.json", "wb") as f:
        f.write(config)
    code, _out, err = run_main(
        ["--root", str(plan_bundle / "state"), "plan", "--bundle", str(plan_bundle), "p1"]
    )
    assert code in (0, 1)
    assert err.count("\n") <= 1 and "internal error" not in err, err


def test_plan_cli_on_a_damaged_config(plan_bundle):
    """The same through the installed entry point: no traceback from a separate process."""
    with open(plan_bundle / "config.json", "wb") as f:
        f.write(config_bytes(BASE)[:-3] + b",}}")
    p = subprocess.run(
        OCIRT + ["plan", "--bundle", str(plan_bundle)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and "line" in p.stderr


# -- damaged state files, through the commands ------------------------------------------------

STATE_COMMANDS = [
    ["state"],
    ["kill"],
    ["kill", "--all", "{id}", "KILL"],
    ["start"],
    ["delete"],
    ["pause"],
    ["resume"],
    ["ps"],
    ["events", "--stats"],
    ["update", "--pids-limit", "10"],
]


def good_state(cid: str) -> dict:
    cg = f"/sys/fs/cgroup/unified/{PARENT}/{cid}"
    return {
        "id": cid,
        "bundle": "/nonexistent",
        "pid": 0,
        "pid_start": 0,
        "rootfs": "/r",
        "created": "2024-01-01T00:00:00Z",
        "owner": "",
        "annotations": {"a": "b"},
        "cgroup": {
            "version": 1,
            "kind": "v2",
            "cgroupsPath": None,
            "paths": {},
            "unified": cg,
            "created": [cg],
            "devices": None,
        },
        "hooks": {"poststop": [{"path": "/bin/true"}]},
        "systemd_cgroup": False,
        "seccomp": None,
        "memory_policy": None,
    }


@st.composite
def damaged_states(draw):
    state = good_state("dmg")
    how = draw(st.sampled_from(["bytes", "member", "extra", "member"]))
    if how == "member":
        state[draw(st.sampled_from(sorted(state)))] = draw(json_values)
        return config_bytes(state)
    if how == "extra":
        state[draw(nasty_text)] = draw(json_values)
        return config_bytes(state)
    return draw(damaged_json(config_bytes(state)))


@examples(40)
@given(data=damaged_states())
def test_damaged_state_files_never_break_a_command(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("states")
    os.makedirs(root / "dmg")
    os.makedirs(root / "fine")
    with open(root / "fine" / "state.json", "w") as f:
        json.dump({"id": "fine", "bundle": "/b"}, f)
    with open(root / "dmg" / "state.json", "wb") as f:
        f.write(data)
    for command in STATE_COMMANDS:
        argv = [a.replace("{id}", "dmg") for a in command]
        if "{id}" not in command:
            argv.append("dmg")
        code, _out, err = run_main(["--root", str(root), *argv])
        assert code in (0, 1), (argv, err)
        assert err.count("\n") <= 1 and "internal error" not in err, (argv, err)
    code, out, _err = run_main(["--root", str(root), "list", "-q"])
    assert code == 0 and "fine" in out.split()
    code, _out, err = run_main(["--root", str(root), "delete", "--force", "dmg"])
    if code == 0:  # what it still tells (a pid, a cgroup) was removed, then the directory
        assert not os.path.exists(root / "dmg")
    else:  # it tells nothing: refused in one line, kept (its container may still run)
        assert code == 1 and err.count("\n") <= 1 and "damaged state.json" in err, err
        assert os.path.exists(root / "dmg")
    assert os.path.exists(root / "fine")


# -- generated configs through create and delete --force (root) -------------------------------

# What create may be given to vary: not the namespaces (without a mount namespace the mounts
# would be the host's), not the mounts or hooks (they act on the host), not the cgroup path
# (the test's own, to find leftovers).
CREATE_PATHS = [
    p
    for p in ALL_PATHS
    if p[:1] not in (("mounts",), ("hooks",), ("root",))
    and p[:2] not in (("linux", "namespaces"), ("linux", "cgroupsPath"), ("linux", "uidMappings"))
]


@pytest.fixture(scope="module")
def create_env(tmp_path_factory, busybox_rootfs):
    yield tmp_path_factory.mktemp("create"), busybox_rootfs
    remove_cgroup_parent(PARENT)


def _cgroup_dirs(name):
    return [
        d
        for top in os.listdir("/sys/fs/cgroup")
        if os.path.isdir(d := os.path.join("/sys/fs/cgroup", top, PARENT, name))
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@examples(12)
@given(config=configs(CREATE_PATHS))
def test_create_of_a_generated_config_fails_cleanly_or_deletes_cleanly(create_env, config):
    base, rootfs = create_env
    cid = f"gen-{uuid.uuid4().hex[:10]}"
    bundle = base / cid
    os.makedirs(bundle)
    config["root"] = {"path": rootfs, "readonly": True}
    if isinstance(config.get("linux"), dict):
        config["linux"]["cgroupsPath"] = f"/{PARENT}/{cid}"
    if isinstance(config.get("process"), dict):
        config["process"]["terminal"] = False
    with open(bundle / "config.json", "wb") as f:
        f.write(config_bytes(config))
    root = str(base / "root")
    p = run_err_to_file(
        OCIRT + ["--root", root, "create", "--bundle", str(bundle), cid], bundle / "stderr", timeout=120
    )
    stderr = p.stderr
    pid = None
    if p.returncode == 0:
        with open(os.path.join(root, cid, "state.json")) as f:
            pid = json.load(f)["pid"]
    d = subprocess.run(
        OCIRT + ["--root", root, "delete", "--force", cid],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode in (0, 1) and "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert stderr.count("\n") <= 1, stderr
    assert d.returncode == 0 and "Traceback" not in d.stderr, d.stderr
    assert "internal error" not in d.stderr, d.stderr
    assert not os.path.exists(os.path.join(root, cid))
    assert not _cgroup_dirs(cid)
    if pid:
        try:
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            pass
