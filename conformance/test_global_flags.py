"""Global flags engines pass: --version, --root, --log, --log-format."""

import json
import os


def test_version(rt):
    p = rt("--version", root=False)
    assert p.returncode == 0, p.stderr
    assert "version" in p.stdout.lower()


def test_unknown_command_fails(rt):
    p = rt("no-such-command")
    assert p.returncode == 3  # runc's (urfave/cli's) status for it
    assert "No help topic for 'no-such-command'" in p.stderr


def test_help_of_a_command(rt):
    p = rt("help", "state")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("NAME:\n") and " state - " in p.stdout.splitlines()[1], p.stdout


def test_help_of_no_command_fails(rt):
    p = rt("help", "no-such-command")
    assert p.returncode == 3
    assert "No help topic for 'no-such-command'" in p.stderr


def test_log_json_on_failure(rt, new_id, tmp_path):
    log = tmp_path / "log.json"
    p = rt("state", new_id(), global_args=["--log", str(log), "--log-format", "json"])
    assert p.returncode != 0
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    assert lines, "nothing logged"
    entries = [json.loads(ln) for ln in lines]
    for e in entries:
        assert {"level", "msg", "time"} <= set(e), e
    errors = [e for e in entries if e["level"] == "error"]
    assert errors and "container does not exist" in errors[-1]["msg"]


def test_log_json_on_create_failure(rt, make_bundle, tmp_path):
    """Engines show the last level=error line of the json log to the user."""
    log = tmp_path / "log.json"
    b = make_bundle(["true"], mutate=lambda c: c["process"].__setitem__("cwd", "relative"))
    p = rt("create", "--bundle", b.path, b.id, global_args=["--log", str(log), "--log-format", "json"])
    assert p.returncode != 0
    entries = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors and errors[-1]["msg"]


def test_log_text_format(rt, new_id, tmp_path):
    log = tmp_path / "log.txt"
    p = rt("state", new_id(), global_args=["--log", str(log)])
    assert p.returncode != 0
    text = log.read_text()
    assert "level=error" in text and "container does not exist" in text


def test_log_appends(rt, new_id, tmp_path):
    log = tmp_path / "log.json"
    for _ in range(2):
        rt("state", new_id(), global_args=["--log", str(log), "--log-format", "json"])
    errors = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    assert len([e for e in errors if e["level"] == "error"]) == 2


def test_root_respected(make_runtime, make_bundle, tmp_path):
    a = make_runtime(root=str(tmp_path / "root-a"))
    b_rt = make_runtime(root=str(tmp_path / "root-b"))
    b = make_bundle(["sleep", "1000"])
    assert a.create(b.id, b).returncode == 0
    assert os.listdir(a.root), "nothing in --root after create"
    assert a.list(quiet=True).stdout.split() == [b.id]
    assert b_rt.list(quiet=True).stdout.split() == []
    assert b_rt.state(b.id).returncode != 0
    assert b_rt.delete(b.id, force=True).returncode == 0
    assert a.status(b.id) == "created"
    assert a.delete(b.id, force=True).returncode == 0
    assert not [n for n in os.listdir(a.root) if n.startswith(b.id)]


def test_root_created_if_missing(make_runtime, make_bundle, tmp_path):
    root = tmp_path / "not" / "yet" / "there"
    r = make_runtime(root=str(root))
    b = make_bundle(["true"])
    p = r.create(b.id, b)
    assert p.returncode == 0, p.stderr
    assert root.is_dir()


def test_root_that_is_a_file(make_runtime, make_bundle, tmp_path):
    """create says the --root cannot be made, not that the container exists (engines read that
    phrase as an id in use); nothing is made."""
    root = tmp_path / "a-file"
    root.write_text("")
    r = make_runtime(root=str(root))
    b = make_bundle(["true"])
    p = r.create(b.id, b)
    assert p.returncode == 1
    line = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert "not a directory" in line and str(root) in line and "already exists" not in line, line
    assert root.read_text() == ""
    root.unlink()  # (the fixture's teardown runs `delete --force` with this --root)


def test_same_id_in_two_roots(make_runtime, make_bundle, tmp_path):
    """Ids are scoped by --root (cgroupsPath differs, so the two containers do not collide)."""
    b1 = make_bundle(["sleep", "1000"])
    b2 = make_bundle(["sleep", "1000"])
    r1 = make_runtime(root=str(tmp_path / "r1"))
    r2 = make_runtime(root=str(tmp_path / "r2"))
    assert r1.create(b1.id, b1).returncode == 0
    p = r2.create(b1.id, b2)
    assert p.returncode == 0, p.stderr
    assert r1.state_json(b1.id)["pid"] != r2.state_json(b1.id)["pid"]


def test_suite_is_black_box():
    """The suite drives a command; it never imports the implementation (checked in its source:
    in a run together with tests/, ocirt is in sys.modules already)."""
    import ast

    here = os.path.dirname(os.path.abspath(__file__))
    for name in os.listdir(here):
        if name.endswith(".py"):
            with open(os.path.join(here, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                mods = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                assert not any(m.split(".")[0] == "ocirt" for m in mods), f"{name} imports {mods}"
