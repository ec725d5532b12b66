"""Bad input on the command line (flag values, argument counts, a console socket nobody uses):
a non-zero exit, a one-line error, runc 1.1.5's words, and nothing left behind (no state, no
cgroup, no process)."""

import os

import pytest
from runtime import cgroup_dirs, ok, one_line

# What runc 1.1.5 says when a console socket is given to a process that gets no terminal, or
# is not detached (checkTerminal).
CONSOLE_UNUSED = "cannot use console socket if runc will not detach or allocate tty"


def assert_nothing_left(rt, bundle):
    assert rt.state(bundle.id).returncode != 0, "a failed create left a container"
    assert os.listdir(rt.root) == [], f"state left in --root: {os.listdir(rt.root)}"
    assert cgroup_dirs(bundle.cgroups_path) == [], "a failed create left its cgroup"


@pytest.fixture
def bundle(make_bundle):
    return make_bundle(["sleep", "1000"])


# ---- --preserve-fds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, why",
    [
        ("1180591620717411303424", "value out of range"),
        ("99999999999999999999", "value out of range"),
        ("", "parse error"),
        ("abc", "parse error"),
        ("1.5", "parse error"),
    ],
)
@pytest.mark.parametrize("command", ["create", "run"])
def test_preserve_fds_not_an_int64(rt, bundle, command, value, why):
    extra = ["--preserve-fds", value] + (["--detach"] if command == "run" else [])
    p = getattr(rt, command)(bundle.id, bundle, extra=extra)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'invalid value \\"{value}\\" for flag -preserve-fds: {why}"')
    assert_nothing_left(rt, bundle)


@pytest.mark.parametrize("value", ["100", "4294967296", str(2**62)])
@pytest.mark.parametrize("command", ["create", "run"])
def test_preserve_fds_not_open_is_refused(rt, bundle, command, value):
    """fds 3 to 3+N-1 are handed on: one the caller did not open is an error (not a hang over
    N fds, nor a container stuck in creating)."""
    extra = ["--preserve-fds", value] + (["--detach"] if command == "run" else [])
    p = getattr(rt, command)(bundle.id, bundle, extra=extra, timeout=20)
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert f"{command} failed: unable to stat preserved-fd " in line and f"(of {value})" in line
    if rt.is_ocirt:
        assert "--preserve-fds" in line
    assert_nothing_left(rt, bundle)


def test_preserve_fds_open_ones_are_taken(rt, bundle, tmp_path):
    f = tmp_path / "fd"
    f.write_text("x")
    prelude = f"exec 3<{f} 4<{f}"
    ok(rt.create(bundle.id, bundle, extra=["--preserve-fds", "2"], prelude=prelude))
    ok(rt.delete(bundle.id, force=True))


def test_exec_preserve_fds(rt, started, tmp_path):
    b = started()
    p = rt("exec", "--preserve-fds", "1180591620717411303424", b.id, "true")
    assert p.returncode == 1
    assert "for flag -preserve-fds: value out of range" in one_line(p.stderr)
    p = rt("exec", "--preserve-fds", "", b.id, "true")
    assert p.returncode == 1
    assert "for flag -preserve-fds: parse error" in one_line(p.stderr)
    p = rt("exec", "--preserve-fds", "4294967296", b.id, "true", timeout=20)
    assert p.returncode == 255
    line = one_line(p.stderr)
    assert "exec failed: unable to stat preserved-fd " in line and "(of 4294967296)" in line
    f = tmp_path / "fd"
    f.write_text("through fd 3\n")
    p = rt("exec", "--preserve-fds", "1", b.id, "sh", "-c", "cat <&3", prelude=f"exec 3<{f}")
    assert ok(p) == "through fd 3\n"
    assert rt.status(b.id) == "running"


# ---- argument counts (runc's checkArgs) ----------------------------------------------------------


EXACTLY_ONE = ["start", "state", "delete", "pause", "resume", "events", "update", "checkpoint", "restore"]


@pytest.mark.parametrize("command", EXACTLY_ONE)
def test_one_argument_only(rt, command):
    p = rt(command, "some-id", "extra")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'\\"{command}\\" requires exactly 1 argument(s)"')
    p = rt(command)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'\\"{command}\\" requires exactly 1 argument(s)"')


@pytest.mark.parametrize("command", ["start", "state", "delete", "pause", "resume"])
def test_an_unknown_dash_word_after_the_id_is_an_argument(rt, command):
    """After an argument, only the command's own flags are flags (runc's CLI moves those alone
    to the front): another dash-word is a second argument, not an unknown flag and its usage."""
    p = rt(command, "some-id", "--no-such-flag")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'\\"{command}\\" requires exactly 1 argument(s)"')


@pytest.mark.parametrize("word", ["-9", "--signal", "-x"])
def test_kill_takes_a_dash_word_after_the_id_for_its_signal(rt, bundle, word):
    """`kill ID -9` is `kill` with the signal "-9" (no such signal: one line, no usage)."""
    assert rt.create(bundle.id, bundle).returncode == 0
    p = rt("kill", bundle.id, word)
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert "flag provided but not defined" not in line
    assert rt.state(bundle.id).returncode == 0  # still there: nothing was sent
    assert rt("kill", bundle.id, "KILL").returncode == 0


@pytest.mark.parametrize("command", ["create", "run"])
def test_create_and_run_take_one_argument(rt, bundle, command):
    rt._remember(bundle.id)  # deleted at teardown, should it be made
    for args in ([bundle.id, "extra"], []):
        p = rt(command, "--bundle", bundle, *args)
        assert p.returncode == 1
        assert one_line(p.stderr).endswith(f'\\"{command}\\" requires exactly 1 argument(s)"')
    assert_nothing_left(rt, bundle)


@pytest.mark.parametrize("command", ["list", "features"])
def test_no_argument(rt, command):
    p = rt(command, "extra")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'\\"{command}\\" requires exactly 0 argument(s)"')


def test_spec_takes_no_argument(rt, tmp_path):
    d = tmp_path / "spec"
    d.mkdir()
    p = rt("spec", "--bundle", d, "extra")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('\\"spec\\" requires exactly 0 argument(s)"')
    assert os.listdir(d) == []


def test_kill_takes_one_or_two(rt, started):
    b = started()
    p = rt("kill", b.id, "KILL", "extra")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('\\"kill\\" requires a maximum of 2 argument(s)"')
    assert rt.status(b.id) == "running"
    p = rt("kill")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('\\"kill\\" requires a minimum of 1 argument(s)"')


@pytest.mark.parametrize("command", ["exec", "ps"])
def test_at_least_one(rt, command):
    p = rt(command)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'\\"{command}\\" requires a minimum of 1 argument(s)"')


# ---- other flags ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "false", "auto", "Auto", "1", "0", "TRUE", "f"])
def test_rootless_values_taken(rt, value):
    ok(rt("--rootless", value, "list"))


@pytest.mark.parametrize("command", ["create", "run"])
def test_rootless_other_values_refused(rt, bundle, command):
    extra = ["--detach"] if command == "run" else []
    p = getattr(rt, command)(bundle.id, bundle, extra=extra, global_args=["--rootless", "maybe"])
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert '\\"maybe\\"' in line
    if rt.is_ocirt:
        assert "--rootless" in line
    assert_nothing_left(rt, bundle)


@pytest.mark.parametrize("value", ["maybe", "yes", ""])
def test_boolean_flag_values(rt, value):
    p = rt("list", f"--quiet={value}")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'invalid boolean value \\"{value}\\" for -quiet: parse error"')
    for taken in ("true", "false", "1", "0", "T", "F"):
        ok(rt("list", f"--quiet={taken}"))


# ---- --console-socket without a terminal ----------------------------------------------------------


@pytest.mark.parametrize(
    "command, extra", [("create", []), ("run", ["--detach"]), ("run", [])], ids=["create", "run-d", "run"]
)
def test_console_socket_without_terminal(rt, bundle, tmp_path, command, extra):
    socket = str(tmp_path / "nonexistent.sock")
    p = getattr(rt, command)(bundle.id, bundle, extra=["--console-socket", socket] + extra)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'{command} failed: {CONSOLE_UNUSED}"')
    assert_nothing_left(rt, bundle)


def test_run_console_socket_not_detached(rt, make_bundle, tmp_path):
    b = make_bundle(["true"], process={"terminal": True})
    p = rt.run(b.id, b, extra=["--console-socket", str(tmp_path / "nonexistent.sock")])
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'run failed: {CONSOLE_UNUSED}"')
    assert_nothing_left(rt, b)


@pytest.mark.parametrize("detach", [True, False])
def test_exec_console_socket_without_tty(rt, started, tmp_path, detach):
    b = started()
    extra = ["--detach"] if detach else []
    p = rt("exec", *extra, "--console-socket", str(tmp_path / "nonexistent.sock"), b.id, "true")
    assert p.returncode == 255
    assert one_line(p.stderr).endswith(f'exec failed: {CONSOLE_UNUSED}"')


# ---- update --resources -------------------------------------------------------------------------


def test_update_resources_not_utf8(rt, started, tmp_path):
    b = started()
    f = tmp_path / "resources.json"
    f.write_bytes(b"\xff{}")
    p = rt("update", "--resources", f, b.id)
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert "internal error" not in line and "Traceback" not in p.stderr
    if rt.is_ocirt:
        assert str(f) in line
    assert rt.status(b.id) == "running"


def test_update_resources_nested_too_deeply(rt, started, tmp_path):
    """A resources document nested past any parser's depth: one line, the container unchanged."""
    b = started()
    f = tmp_path / "resources.json"
    f.write_text("[" * 100000 + "]" * 100000)
    p = rt("update", "--resources", f, b.id)
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert "internal error" not in line and "Traceback" not in p.stderr
    assert rt.status(b.id) == "running"


@pytest.mark.parametrize("flag", ["--memory", "--memory-reservation"])
def test_update_memory_past_int64_is_refused(rt, started, flag):
    """The kernel would take 2**64 and more modulo 2**64: a limit nobody asked for."""
    b = started()
    p = rt("update", flag, "99999999999999999999999", b.id)
    assert p.returncode == 1
    if rt.is_ocirt:  # (runc writes int64's minimum, fails, and warns that it could not undo)
        one_line(p.stderr)


@pytest.mark.parametrize("source", ["/dev/zero", "/dev/urandom"])
def test_config_json_that_never_ends_fails_at_once(rt, make_bundle, source):
    """config.json a link to a device that never ends: create fails in one line, quickly (it is
    not read until memory runs out), and leaves nothing behind."""
    b = make_bundle(["true"])
    os.unlink(os.path.join(b.path, "config.json"))
    os.symlink(source, os.path.join(b.path, "config.json"))
    p = rt.create(b.id, b, timeout=20)
    assert p.returncode == 1
    one_line(p.stderr)
    assert_nothing_left(rt, b)


@pytest.mark.parametrize("cid", ["", "..", "a/b"])
def test_delete_force_of_a_bad_id_is_an_error(rt, cid):
    """--force forgives a container that is not there, not an id that cannot be one."""
    p = rt.delete(cid, force=True)
    assert p.returncode == 1
    one_line(p.stderr)


def test_log_file_that_cannot_be_opened_fails_the_command(rt, tmp_path):
    p = rt("--log", str(tmp_path / "no" / "such" / "dir" / "log"), "list")
    assert p.returncode == 1
    assert "no such file or directory" in one_line(p.stderr).lower()


def test_exec_cap_that_is_no_capability_warns(rt, started):
    """exec --cap NAME for a name the kernel has no number for: left out, with a warning (as an
    unknown name in config.json; config.md: SHOULD NOT fail)."""
    b = started()
    p = rt("exec", "--cap", "CAP_CONFORMANCE_BOGUS", b.id, "true")
    assert p.returncode == 0, p.stderr
    assert "CAP_CONFORMANCE_BOGUS" in p.stderr and "warn" in p.stderr.lower(), p.stderr


# ---- container ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["state", "start", "kill", "delete", "pause"])
def test_empty_id_is_runcs_error(rt, command):
    p = rt(command, "")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('msg="container id cannot be empty"')


@pytest.mark.parametrize("cid", ["a/b", "..", "a b", "x\u00e9"])
def test_bad_id_is_runcs_error(rt, cid):
    p = rt("state", cid)
    assert p.returncode == 1
    # runc's words (ocirt names the id after them)
    assert 'msg="invalid container ID format' in one_line(p.stderr)


def test_unknown_signal_is_runcs_error(rt, make_bundle):
    b = make_bundle(["sleep", "1000"])
    ok(rt.create(b.id, b))
    p = rt.kill(b.id, "FOO")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('msg="unknown signal \\"FOO\\""')
    rt.delete(b.id, force=True)


def test_kill_of_no_container_with_an_unknown_signal_is_the_missing_container(rt):
    """The container is looked up before the signal is read, as runc's."""
    p = rt.kill("nosuch", "FOO")
    assert p.returncode == 1
    assert 'msg="container does not exist' in one_line(p.stderr), p.stderr


@pytest.mark.parametrize("command", ["kill", "start", "pause", "delete"])
def test_an_id_too_long_for_a_file_name_is_one_line(rt, command):
    """A well-formed id whose state directory's name the kernel refuses (over 255 bytes): one
    line with the kernel's words (runc: `lstat <path>: file name too long`)."""
    p = rt(command, "y" * 300)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('file name too long"'), p.stderr


def test_a_file_where_the_state_directory_would_be_is_one_line(rt):
    """A file in --root named as the container: one line, the kernel's words (runc: `open
    <path>/state.json: not a directory`)."""
    os.makedirs(rt.root, exist_ok=True)
    with open(os.path.join(rt.root, "stray"), "w"):
        pass
    p = rt("kill", "stray")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('not a directory"'), p.stderr


@pytest.mark.parametrize(
    "args, head, name",
    [
        (["state"], "Incorrect Usage.", " state - output the state of a container"),
        (["kill", "a", "b", "c"], "Incorrect Usage.", " kill - "),
        (
            ["delete", "--forcee", "x"],
            "Incorrect Usage: flag provided but not defined: -forcee",
            " delete - ",
        ),
        (
            ["update", "--pids-limit", "abc", "x"],
            'Incorrect Usage: invalid value "abc" for flag -pids-limit',
            " update - ",
        ),
        (
            ["--foo", "list"],
            "Incorrect Usage. flag provided but not defined: -foo",
            " - Open Container Initiative runtime",
        ),
    ],
)
def test_a_usage_error_prints_the_help_on_stdout(rt, args, head, name):
    """As runc (urfave/cli): the error line on stderr, and on stdout "Incorrect Usage" with the
    flag's error, then the help of the command (or of the runtime, for a global flag)."""
    p = rt(*args, root=False)
    assert p.returncode == 1
    one_line(p.stderr)
    assert p.stdout.startswith(head), p.stdout
    assert "\n\nNAME:\n" in p.stdout and name in p.stdout.split("\n")[3], p.stdout


@pytest.mark.parametrize(
    "args", [["delete", "---force", "x"], ["---debug", "list"], ["list", "-=x"], ["list", "--="]]
)
def test_a_flag_of_three_dashes_or_no_name_is_bad_syntax(rt, args):
    """Go's flags: one or two dashes and a name (`delete ---force` force-deleted)."""
    p = rt(*args, root=False)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'msg="bad flag syntax: {next(a for a in args if a.startswith("-"))}"')
