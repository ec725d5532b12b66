"""Bad input on ocirt's command line where ocirt is stricter than runc 1.1.5 (which takes these
and goes on), and the parsing of flag values itself: a one-line error, a non-zero exit, nothing
left behind. conformance/test_cli_input_errors.py has the cases runc refuses too."""

import json
import os
import subprocess
import sys
import uuid

import pytest
from cli_helpers import OCIRT, REPO, make_bundle, run_err_to_file

from ocirt.checks import check_preserved_fds
from ocirt.cli import GLOBAL_OPTIONS, UsageError, go_int, parse
from ocirt.commands.create import OPTIONS as CREATE_OPTIONS
from ocirt.errors import OcirtError

# -- Go int flags: strconv.ParseInt(s, 0, 64) ----------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [("0", 0), ("7", 7), ("-1", -1), ("+3", 3), ("0x1f", 31), ("0o17", 15), ("017", 15), ("0b11", 3)]
    + [("1_000", 1000), ("0_7", 7), (str(2**63 - 1), 2**63 - 1), (str(-(2**63)), -(2**63))],
)
def test_go_int_taken(text, value):
    assert go_int("n", text) == value


@pytest.mark.parametrize(
    "text", ["", " 1", "1 ", "a", "1.5", "08", "0x", "1__0", "_1", "--1", "\u0661", "1e3"]
)
def test_go_int_parse_error(text):
    with pytest.raises(UsageError, match=rf'^invalid value "{text}" for flag -n: parse error$'):
        go_int("n", text)


@pytest.mark.parametrize("text", [str(2**63), str(-(2**63) - 1), "1180591620717411303424"])
def test_go_int_out_of_range(text):
    with pytest.raises(UsageError, match=r": value out of range$"):
        go_int("n", text)


def test_number_flags_parsed_with_the_others():
    values, args = parse(CREATE_OPTIONS, ["--preserve-fds=0x2", "id"], stop_at_positional=False)
    assert values["preserve_fds"] == 2 and args == ["id"]
    values, _ = parse(CREATE_OPTIONS, ["id"], stop_at_positional=False)
    assert values["preserve_fds"] == 0
    with pytest.raises(UsageError, match='invalid value "x" for flag -preserve-fds: parse error'):
        parse(CREATE_OPTIONS, ["--preserve-fds", "x", "id"], stop_at_positional=False)


@pytest.mark.parametrize(
    "text, value", [("1", True), ("t", True), ("True", True), ("0", False), ("F", False)]
)
def test_boolean_values(text, value):
    values, _ = parse(GLOBAL_OPTIONS, [f"--debug={text}", "list"], stop_at_positional=True)
    assert values["debug"] is value


def test_boolean_value_refused():
    with pytest.raises(UsageError, match=r'^invalid boolean value "yes" for -debug: parse error$'):
        parse(GLOBAL_OPTIONS, ["-debug=yes", "list"], stop_at_positional=True)


# -- --preserve-fds: fds that are open here -----------------------------------------------------------


PRESERVED_FDS = """
import json
import os
from ocirt.checks import check_preserved_fds
from ocirt.errors import OcirtError

def refused(n):
    try:
        check_preserved_fds(n)
    except OcirtError as e:
        return str(e)
    return None

print(refused(1))  # fd 3: not open
r, w = os.pipe()  # 3 and 4, close-on-exec: the process's own
assert (r, w) == (3, 4), (r, w)
print(refused(1))
os.set_inheritable(r, True)
print(refused(1), refused(2))
"""


def test_preserved_fds_must_be_open_and_inheritable():
    """ocirt's own fds are close-on-exec: not the caller's, so not to be handed on."""
    p = subprocess.run(
        [sys.executable, "-c", PRESERVED_FDS], cwd=REPO, capture_output=True, text=True, close_fds=True
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "unable to stat preserved-fd 0 (of 1): fd 3 is not open (--preserve-fds 1)",
        "unable to stat preserved-fd 0 (of 1): fd 3 is not open (--preserve-fds 1)",
        "None unable to stat preserved-fd 1 (of 2): fd 4 is not open (--preserve-fds 2)",
    ]


def test_preserved_fds_huge_count_is_quick():
    check_preserved_fds(0)
    with pytest.raises(OcirtError, match=r"\(of 4611686018427387904\)"):
        check_preserved_fds(2**62)  # stops at the first fd that is not the caller's


# -- the command line, as a process ------------------------------------------------------------------


@pytest.fixture
def box(tmp_path, busybox_rootfs):
    """(run(args) -> CompletedProcess, the bundle, a fresh id, the --root): everything the test
    made is deleted at the end."""
    cid = f"bad-input-{uuid.uuid4().hex[:8]}"
    root = str(tmp_path / "root")
    bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["sleep", "60"])
    n = [0]

    def run(*args, global_args=()):
        n[0] += 1
        return run_err_to_file(OCIRT + ["--root", root, *global_args, *args], tmp_path / f"err{n[0]}")

    yield run, bundle, cid, root
    subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)


def error_line(p):
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def assert_nothing_left(run, cid, root):
    assert run("state", cid).returncode == 1
    assert not os.path.isdir(root) or os.listdir(root) == []


@pytest.mark.parametrize("command", ["create", "run"])
def test_negative_preserve_fds(box, command):
    run, bundle, cid, root = box
    extra = ["-d"] if command == "run" else []
    p = run(command, *extra, "--preserve-fds", "-1", "--bundle", bundle, cid)
    assert p.returncode == 1
    assert 'invalid value \\"-1\\" for flag -preserve-fds' in error_line(p)
    assert_nothing_left(run, cid, root)


def test_exec_negative_preserve_fds(box):
    run, bundle, cid, _ = box
    assert run("run", "-d", "--bundle", bundle, cid).returncode == 0
    p = run("exec", "--preserve-fds", "-1", cid, "true")
    assert p.returncode == 1
    assert 'invalid value \\"-1\\" for flag -preserve-fds' in error_line(p)


def test_preserve_fds_not_inherited_by_the_container(box, tmp_path):
    """fd 3 of ocirt itself (the launcher's bundle file, say) is never what --preserve-fds 1
    hands to the container: the caller has none there, so create fails."""
    run, bundle, cid, root = box
    p = run("create", "--preserve-fds", "1", "--bundle", bundle, cid)
    assert p.returncode == 1
    assert "fd 3 is not open (--preserve-fds 1)" in error_line(p)
    assert_nothing_left(run, cid, root)


@pytest.mark.parametrize("value", ["maybe", "yes", "2"])
def test_rootless_refused_for_every_command(box, value):
    run, _, _, _ = box
    p = run("list", global_args=["--rootless", value])
    assert p.returncode == 1
    assert f'invalid value \\"{value}\\" for flag --rootless: expected true, false or auto' in error_line(p)


def test_empty_root_refused(box):
    run, bundle, cid, _ = box
    for args in (["list"], ["create", "--bundle", bundle, cid]):
        p = run_err_to_file(OCIRT + ["--root", "", *args], bundle + "/err", cwd=bundle)
        assert p.returncode == 1
        assert 'invalid value \\"\\" for flag --root: an empty path' in error_line(p)
    assert not os.path.exists(os.path.join(bundle, cid))


def test_update_resources_not_utf8(box, tmp_path):
    run, bundle, cid, _ = box
    assert run("run", "-d", "--bundle", bundle, cid).returncode == 0
    f = tmp_path / "r.json"
    f.write_bytes(b"\xff{}")
    p = run("update", "-r", str(f), cid)
    assert p.returncode == 1
    line = error_line(p)
    assert f"invalid resources JSON in {f}: not UTF-8" in line and "internal error" not in line


def test_state_that_cannot_be_written_is_named(box):
    """A --root where state.json cannot be written (RLIMIT_FSIZE 0 here; a full or read-only
    filesystem alike): the file and the reason in one line, nothing left behind."""
    import resource

    _, bundle, cid, root = box
    p = subprocess.run(
        [*OCIRT, "--root", root, "create", "--bundle", bundle, cid],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY)),
    )
    assert p.returncode == 1
    assert f"write {root}/{cid}/state.json.tmp: file too large" in error_line(p)
    assert os.listdir(root) == []


def test_a_log_file_that_cannot_be_written_leaves_one_line(box):
    """runc's fatal(): the log line into --log FILE and the bare message on stderr; where the
    file takes nothing (/dev/full), the log line on stderr is all."""
    run, _, cid, _ = box
    p = run("state", cid, global_args=["--log", "/dev/full"])
    assert p.returncode == 1
    assert error_line(p).endswith(f'msg="container does not exist: {cid}"')


@pytest.mark.parametrize("command", ["create", "check", "plan"])
def test_config_json_a_fifo_no_one_writes_to(box, command):
    """A config.json that is a FIFO with no writer is read as empty: one line, at once, where
    the read waited for ever (runc's does)."""
    run, bundle, cid, root = box
    os.replace(os.path.join(bundle, "config.json"), os.path.join(bundle, "config.saved"))
    os.mkfifo(os.path.join(bundle, "config.json"))
    argv = [command, "--bundle", bundle] + ([cid] if command != "check" else [])
    p = run_err_to_file(OCIRT + ["--root", root, *argv], bundle + "/err", timeout=30)
    assert p.returncode == 1
    if command != "check":  # (its report is on stdout)
        assert "invalid JSON: line 1 column 1" in error_line(p)
    assert_nothing_left(run, cid, root)


def test_update_resources_a_fifo_no_one_writes_to(box, tmp_path):
    run, bundle, cid, _ = box
    assert run("run", "-d", "--bundle", bundle, cid).returncode == 0
    os.mkfifo(tmp_path / "resources")
    p = run("update", "--resources", str(tmp_path / "resources"), cid)
    assert p.returncode == 1
    assert "invalid resources JSON" in error_line(p)


def test_log_a_fifo_no_one_reads(box, tmp_path):
    """--log FILE that is a FIFO without a reader: the command fails at once, its open named
    (runc's waits for a reader for ever)."""
    run, _, cid, _ = box
    os.mkfifo(tmp_path / "log")
    p = run("state", cid, global_args=["--log", str(tmp_path / "log")])
    assert p.returncode == 1
    assert f"open {tmp_path}/log: no such device or address" in error_line(p)


def test_a_stderr_that_takes_nothing_keeps_the_exit_status(box):
    """2>/dev/full: the error line cannot be written, and the exit status is still the
    command's (it was 120, the interpreter's, for the failed write)."""
    _, _, cid, root = box
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            OCIRT + ["--root", root, "state", cid],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=full,
            timeout=60,
        )
    assert p.returncode == 1


def test_relative_root_where_the_current_directory_is_gone(box, tmp_path):
    """--root is made absolute first (as runc's); with the current directory removed, a relative
    one is an error naming it (state said "container does not exist", list an empty table)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    for args in (["state", "x"], ["list"]):
        p = subprocess.run(
            [sys.executable, "-m", "ocirt", "--root", "rel", *args],
            cwd=gone,
            env={**os.environ, "PYTHONPATH": REPO},
            preexec_fn=lambda: os.rmdir(gone),  # (the child's cwd, removed under it)
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        gone.mkdir()
        assert p.returncode == 1
        assert "--root rel: a relative path, and the current directory is gone" in error_line(p)


@pytest.mark.parametrize("key", ["\n", "\r", "\ud800", "a\x1bb"])
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_member_name_no_line_holds_is_escaped_in_the_error(box, tmp_path, key, log_format):
    """A config member named with a newline, an escape or a lone surrogate (invalid UTF-8 in
    the file): the pointer holds it in JSON's escapes, so the error is one line on stderr and
    in --log FILE (a surrogate made the log's write fail: no line at all, "cannot start")."""
    run, bundle, cid, root = box
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["annotations"] = {key: None}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    log = tmp_path / "log"
    p = run("create", "--bundle", bundle, cid, global_args=["--log", str(log), "--log-format", log_format])
    assert p.returncode == 1
    escaped = json.dumps(key)[1:-1]  # as JSON writes it
    assert error_line(p) == f"ocirt create failed: config.json: /annotations/{escaped}: null is not a string"
    (line,) = log.read_text().splitlines()
    assert "/annotations/" in line and "null is not a string" in line
    assert_nothing_left(run, cid, root)
    p = run_err_to_file(OCIRT + ["check", "--bundle", bundle], tmp_path / "check-err", stdout=-1, text=True)
    assert p.returncode == 1 and p.stderr == "", p.stderr
    assert f"/annotations/{escaped}: " in p.stdout


def test_an_id_of_bytes_no_utf8_is_one_line_in_the_json_log(box, tmp_path):
    run, _, _, _ = box
    log = tmp_path / "log"
    p = run("state", "a\udcffb", global_args=["--log", str(log), "--log-format", "json"])
    assert p.returncode == 1
    assert error_line(p) == "invalid container ID format: a\\udcffb"
    (line,) = log.read_text().splitlines()
    assert json.loads(line)["msg"].startswith("invalid container ID format: a")
