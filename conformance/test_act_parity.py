"""Commands that act on a live container (`exec` without a terminal, `kill`), where a runc user
or an engine would notice a difference from runc 1.1.5: exit codes, error wording, what the
exec'd process gets. Each test passes on runc and on ocirt."""

import pytest
from runtime import container_pids, one_line, sh, wait_for


def assert_exec_failed(rt, b, p, code, message):
    """exec failed with `code` and a one-line error ending in `message`, and left no process in
    the container (its init alone)."""
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    line = one_line(p.stderr)
    assert line.endswith(message.replace('"', '\\"') + '"'), line
    assert container_pids(b) == {rt.state_json(b.id)["pid"]}
    assert rt.status(b.id) == "running"


def status_caps(text):
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of /proc/PID/status, as ints."""
    caps = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            caps[key] = int(value.strip(), 16)
    return caps


CAP_SYS_ADMIN = 1 << 21


def test_exec_cap_is_not_inheritable(rt, started):
    """exec --cap NAME adds NAME to the bounding, effective and permitted sets only: in the
    inheritable set it would survive an execve of a non-root program with file capabilities
    (CVE-2022-29162; runc 1.1.2 and later)."""
    b = started(
        mutate=lambda c: c["process"]["capabilities"].update(inheritable=[], ambient=[]),
    )
    p = rt("exec", "--cap", "CAP_SYS_ADMIN", b.id, "cat", "/proc/self/status")
    assert p.returncode == 0, p.stderr
    caps = status_caps(p.stdout)
    for key in ("CapBnd", "CapPrm", "CapEff"):
        assert caps[key] & CAP_SYS_ADMIN, (key, caps)
    assert caps["CapInh"] == 0 and caps["CapAmb"] == 0, caps


def test_exec_relative_cwd_is_refused(rt, started):
    """--cwd must be absolute (config.md: cwd "MUST be an absolute path"), as in a process.json."""
    b = started()
    p = rt("exec", "--cwd", "tmp", b.id, "pwd")
    assert p.stdout == ""
    assert_exec_failed(rt, b, p, 255, "exec failed: Cwd must be an absolute path")


def test_exec_without_a_command_is_refused_in_runcs_words(rt, started):
    b = started()
    assert_exec_failed(rt, b, rt("exec", b.id), 255, "exec failed: process args cannot be empty")


def test_exec_absolute_cwd(rt, started):
    b = started()
    p = rt("exec", "--cwd", "/tmp", b.id, "pwd")
    assert (p.returncode, p.stdout) == (0, "/tmp\n"), p.stderr


@pytest.mark.parametrize(
    "value,message",
    [
        ("NOEQUALS", 'invalid environment variable: "NOEQUALS"'),
        ("=value", 'environment variable name can\'t be empty: "=value"'),
    ],
)
def test_exec_env_not_key_value(rt, started, value, message):
    """--env KEY=VALUE: runc's words for the two malformed values, exit 255."""
    b = started()
    p = rt("exec", "--env", value, b.id, "true")
    assert_exec_failed(rt, b, p, 255, message)


def test_exec_env_empty_value(rt, started):
    b = started()
    p = rt("exec", "--env", "EMPTY=", "--env", "A=1", b.id, "sh", "-c", 'echo "${EMPTY-unset}.$A"')
    assert (p.returncode, p.stdout) == (0, ".1\n"), p.stderr


@pytest.mark.parametrize(
    "value,why",
    [
        ("abc", "invalid syntax"),
        ("0x5", "invalid syntax"),
        ("", "invalid syntax"),
        ("99999999999999999999", "value out of range"),
    ],
)
def test_exec_additional_gids_not_a_number(rt, started, value, why):
    """A value the flag parser refuses is a usage error: exit 1 (runc: urfave/cli's), not 255."""
    b = started()
    p = rt("exec", "--additional-gids", value, b.id, "true")
    assert p.returncode == 1, (p.stdout, p.stderr)
    line = one_line(p.stderr)
    want = f'invalid value "{value}" for flag -additional-gids: strconv.ParseInt: parsing "{value}": {why}'
    assert line.endswith(want.replace('"', '\\"') + '"'), line
    assert container_pids(b) == {rt.state_json(b.id)["pid"]}


def test_exec_additional_gids_decimal(rt, started):
    """Decimal, a leading 0 or + allowed (strconv.ParseInt base 10)."""
    b = started()
    p = rt("exec", "-u", "1000:1000", "-g", "010", "-g", "+7", b.id, "id", "-G")
    assert (p.returncode, sorted(p.stdout.split())) == (0, ["10", "1000", "7"]), p.stderr


def test_exec_in_stopped_container(rt, make_bundle):
    """runc's words: engines see them when a container exits under an exec."""
    b = make_bundle(["true"])
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    rt.wait_status(b.id, "stopped")
    for detach in ([], ["--detach"]):
        p = rt("exec", *detach, b.id, "true")
        assert p.returncode == 255, p.stderr
        assert one_line(p.stderr).endswith('exec failed: cannot exec in a stopped container"'), p.stderr


TERM_TRAP = sh("trap 'exit 7' TERM; sleep 100000 & wait")


@pytest.mark.parametrize("signal", ["", "+15", "TERM", "sigterm", "15"])
def test_kill_signal_spellings(rt, started, signal):
    """An empty signal argument is the default (SIGTERM); a number may carry a "+" (Go's
    strconv.Atoi), a name its SIG prefix or not, in any case."""
    b = started(TERM_TRAP)
    # the trap is set once sleep runs: before, the shell (pid 1, no handler) would not get it
    wait_for(lambda: len(container_pids(b)) == 2, what="the shell's trap set")
    p = rt.kill(b.id, signal)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    rt.wait_status(b.id, "stopped")


@pytest.mark.parametrize("signal", ["NOSUCH", "SIGNOSUCH", "1.5", "0x1", " 1", "SIG", "RTMIN+1"])
def test_kill_unknown_signal(rt, started, signal):
    b = started(TERM_TRAP)
    p = rt.kill(b.id, signal)
    assert p.returncode == 1
    assert "unknown signal" in one_line(p.stderr) and signal.strip() in p.stderr
    assert rt.status(b.id) == "running"


@pytest.mark.parametrize(
    "signal", ["SIGTERM", "SIGHUP", "SIGALRM", "SIGPIPE", "SIGTSTP", "SIGTTIN", "SIGCONT", "SIGXFSZ", 64]
)
def test_foreground_exec_forwards_signals(rt, started, signal):
    """A signal to a foreground `exec` goes on to its process (runc forwards every signal it can
    catch but SIGCHLD, SIGWINCH and SIGURG): it must neither kill nor stop the runtime, which
    would leave the process without anyone to report its exit."""
    import signal as signals

    num = signal if isinstance(signal, int) else getattr(signals, signal)
    b = started()
    script = f"trap 'echo got; exit 5' {num}; echo ready; while :; do sleep 1; done"
    p = rt.popen("exec", b.id, "sh", "-c", script)
    try:

        def ready():
            p.out_file.seek(0)
            return b"ready" in p.out_file.read() or p.poll() is not None

        wait_for(ready, what="the exec'd shell's trap")
        p.send_signal(num)
        code = p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    p.out_file.seek(0)
    p.err_file.seek(0)
    assert (code, p.out_file.read(), p.err_file.read()) == (5, b"ready\ngot\n", b"")


@pytest.mark.parametrize("user", ["5:", ":5", "5:6:7", "nobody", "5:nogroup"])
def test_exec_user_not_numeric(rt, started, user):
    """--user is <uid>[:<gid>], both numbers: anything else fails (exit 255), a gid left empty
    after the colon too."""
    b = started()
    p = rt("exec", "--user", user, b.id, "id")
    assert p.returncode == 255 and p.stdout == "", (p.stdout, p.stderr)
    assert "exec failed: " in one_line(p.stderr)
    assert container_pids(b) == {rt.state_json(b.id)["pid"]}


@pytest.mark.parametrize(
    "how",
    [
        ("--kernel-memory", "100M"),
        ("--kernel-memory-tcp", "100M"),
        ("-r", "-", '{"memory": {"kernel": 104857600}}'),
        ("-r", "-", '{"memory": {"kernelTCP": 104857600, "limit": 209715200}}'),
    ],
)
def test_update_kernel_memory_warns(rt, started, how):
    """Kernel memory (obsolete; the kernel has dropped it) is ignored with a warning, from the
    flags or from --resources alike; the update succeeds."""
    b = started()
    flags, doc = how[:2], (how[2] if len(how) > 2 else None)
    p = rt("update", *flags, b.id, input=doc)
    assert (p.returncode, p.stdout) == (0, ""), p.stderr
    line = one_line(p.stderr)
    assert "level=warning" in line and "Kernel memory settings are ignored and will be removed" in line


def test_update_without_kernel_memory_is_silent(rt, started):
    b = started()
    p = rt("update", "-r", "-", b.id, input='{"memory": {"limit": 209715200}, "pids": {"limit": 99}}')
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
