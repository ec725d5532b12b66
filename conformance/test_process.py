"""process (config.md "Process"): args, env, cwd, user, umask, rlimits, oomScoreAdj,
noNewPrivileges, capabilities, stdio and extra fds."""

import os

import pytest
from runtime import ok, sh, wait_for


def status_field(out, name):
    """Value of `name:` in /proc/self/status text."""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.split()
    raise AssertionError(f"{name} not in {out!r}")


def process(**fields):
    def mutate(c):
        c["process"].update(fields)

    return mutate


def user(**fields):
    def mutate(c):
        c["process"]["user"] = fields

    return mutate


@pytest.mark.parametrize("uid", [0, 1000])
def test_no_capabilities_field_is_no_capabilities(run_in, uid):
    """process.capabilities left out: every set empty, as runc makes them (ocirt kept the
    runtime's own, a full bounding set for any uid)."""

    def mutate(c):
        del c["process"]["capabilities"]
        c["process"]["user"] = {"uid": uid, "gid": uid}

    out = ok(run_in(sh("grep ^Cap /proc/self/status"), mutate=mutate))
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status_field(out, key)[0], 16) == 0, out


# ---- args, env, cwd ------------------------------------------------------------------------------------


def test_args_passed_verbatim(run_in):
    out = ok(run_in(["sh", "-c", 'printf "[%s]" "$0" "$@"', "zero", "a b", "", "c*", "$HOME", "'q'"]))
    assert out == "[zero][a b][][c*][$HOME]['q']"


def test_args0_looked_up_in_path(run_in):
    assert ok(run_in(["echo", "via-PATH"])) == "via-PATH\n"


@pytest.mark.runc_deviates(
    "runc 1.1.5 (Go's exec.LookPath) searches nothing without PATH; config.md gives args[0] "
    "execvp(3)'s semantics, whose search path is then /bin:/usr/bin"
)
def test_args0_without_path_is_searched_as_execvp_does(run_in):
    assert ok(run_in(["echo", "no-PATH"], process={"env": ["TERM=xterm"], "cwd": "/tmp"})) == "no-PATH\n"


@pytest.mark.parametrize(
    "arg0, reason",
    [
        ("/no/such/program", 'stat /no/such/program: no such file or directory"'),
        ("/etc/passwd/x", 'stat /etc/passwd/x: not a directory"'),
        ("/tmp", "permission denied"),  # a directory
        ("/etc/passwd", "permission denied"),  # not executable
        ("no-such-program", "executable file not found in $PATH"),
    ],
)
def test_args0_that_cannot_run_is_runcs_error(rt, make_bundle, arg0, reason):
    """The lookup's error as runc words it (exec.LookPath's): engines tell "permission denied"
    (podman's exit 126) from the rest (127)."""
    b = make_bundle([arg0])
    p = rt.run(b.id, b)
    assert p.returncode != 0
    line = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert f'exec: \\"{arg0}\\": {reason}' in line, line
    rt.delete(b.id, force=True)


def test_env_exact(run_in):
    env = ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "WITH_EQ=a=b"]
    # /proc/1/environ: the environment init was exec'd with. (Not `tr < /proc/1/environ`: sh would
    # exec tr after opening the file, and an environ opened before an exec reads empty.)
    out = ok(
        run_in(
            sh("cat /proc/1/environ | tr '\\0' '\\n'"),
            process={"env": env},
            run_kw={"prelude": "export CONFORMANCE_HOST_ONLY=leak"},
        )
    )
    got = out.splitlines()
    assert set(env) <= set(got)
    extra = [e for e in got if e not in env]
    # runc (and ocirt, like it) adds HOME when the config has none; nothing of the caller leaks.
    assert all(e.startswith("HOME=") for e in extra), extra


def test_cwd(run_in):
    assert ok(run_in(["pwd"], process={"cwd": "/tmp"})) == "/tmp\n"


def test_cwd_relative_file_access(run_in):
    assert ok(run_in(["cat", "passwd"], process={"cwd": "/etc"})).startswith("root:")


# ---- user --------------------------------------------------------------------------------------------


def test_user_uid_gid_additional_gids(run_in):
    out = ok(
        run_in(sh("cat /proc/self/status"), mutate=user(uid=1000, gid=1001, additionalGids=[2000, 3000]))
    )
    assert status_field(out, "Uid") == ["1000"] * 4
    assert status_field(out, "Gid") == ["1001"] * 4
    assert set(status_field(out, "Groups")) == {"2000", "3000"}


def test_user_without_additional_gids_has_no_host_groups(run_in):
    out = ok(run_in(sh("cat /proc/self/status"), mutate=user(uid=1000, gid=1000)))
    assert set(status_field(out, "Groups")) <= {"1000"}


def test_user_root(run_in):
    assert ok(run_in(sh("id -u; id -g"))).split() == ["0", "0"]


def test_umask(run_in):
    out = ok(run_in(sh("umask; touch /tmp/f; stat -c %a /tmp/f"), mutate=user(uid=0, gid=0, umask=0o027)))
    assert out.split() == ["0027", "640"]


@pytest.mark.runc_deviates(
    "runc 1.1.5 sets umask 0022 when process.user.umask is absent "
    "(config.md: if unspecified, the umask should not be changed from the caller's)"
)
def test_umask_absent_inherits_callers(run_in):
    out = ok(run_in(sh("umask"), run_kw={"prelude": "umask 0077"}))
    assert out.strip() == "0077"


# ---- rlimits, oom_score_adj, no_new_privs ---------------------------------------------------------------


@pytest.mark.parametrize("home", [["HOME="], []], ids=["empty", "unset"])
def test_an_empty_home_is_the_users(run_in, home):
    """HOME set to nothing counts as unset, as in runc: the user's home from /etc/passwd."""
    out = ok(run_in(sh('echo "[$HOME]"'), process={"env": ["PATH=/bin:/usr/bin", *home]}))
    assert out == "[/root]\n"


def test_additional_gids_are_set_once_each(run_in):
    out = ok(
        run_in(sh("grep ^Groups: /proc/self/status"), mutate=user(uid=0, gid=0, additionalGids=[5, 5, 0]))
    )
    assert status_field(out, "Groups") == ["0", "5"]


def test_rlimits(run_in):
    rlimits = [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
    ]
    out = ok(
        run_in(
            sh("grep -E '^Max (open files|core file size)' /proc/self/limits"), process={"rlimits": rlimits}
        )
    )
    rows = _limits_rows(out)
    assert rows["Max open files"] == ["100", "200"]
    assert rows["Max core file size"] == ["0", "4096"]


# Every rlimit of config.md's Linux list, by its row in /proc/self/limits, and the value it gets
# here where this process's own hard limit is unlimited (else its hard limit: raising one would
# need CAP_SYS_RESOURCE). RLIMIT_LOCKS is the one Python's resource module does not know.
RLIMIT_ROWS = {
    "RLIMIT_CPU": ("Max cpu time", 100000),
    "RLIMIT_FSIZE": ("Max file size", 1 << 40),
    "RLIMIT_DATA": ("Max data size", 1 << 40),
    "RLIMIT_STACK": ("Max stack size", 1 << 30),
    "RLIMIT_CORE": ("Max core file size", 1 << 30),
    "RLIMIT_RSS": ("Max resident set", 1 << 40),
    "RLIMIT_NPROC": ("Max processes", 100000),
    "RLIMIT_NOFILE": ("Max open files", 4096),
    "RLIMIT_MEMLOCK": ("Max locked memory", 1 << 30),
    "RLIMIT_AS": ("Max address space", 1 << 42),
    "RLIMIT_LOCKS": ("Max file locks", 77),
    "RLIMIT_SIGPENDING": ("Max pending signals", 50000),
    "RLIMIT_MSGQUEUE": ("Max msgqueue size", 819200),
    "RLIMIT_NICE": ("Max nice priority", 0),
    "RLIMIT_RTPRIO": ("Max realtime priority", 0),
    "RLIMIT_RTTIME": ("Max realtime timeout", 1 << 30),
}


def _limits_rows(text: str) -> dict:
    """/proc/self/limits' rows (or some of them) by name: [soft, hard]."""
    return {ln[:26].strip(): ln[26:].split()[:2] for ln in text.splitlines()}


def _every_rlimit() -> tuple[list, dict]:
    """The sixteen at the values above, and the rows they should give."""
    with open("/proc/self/limits") as f:
        own = _limits_rows(f.read())
    rlimits, want = [], {}
    for name, (row, value) in RLIMIT_ROWS.items():
        hard = own[row][1]
        value = value if hard == "unlimited" else int(hard)
        rlimits.append({"type": name, "soft": value, "hard": value})
        want[row] = [str(value), str(value)]
    return rlimits, want


def test_every_rlimit_of_the_spec_is_applied(run_in):
    """All sixteen are taken and set, soft and hard (ocirt refused RLIMIT_LOCKS before)."""
    rlimits, want = _every_rlimit()
    got = _limits_rows(ok(run_in(sh("cat /proc/self/limits"), process={"rlimits": rlimits})))
    assert {row: got[row] for row in want} == want


def test_exec_gets_the_configs_rlimits(rt, started):
    """exec's process is config.json's with the command line's changes: its rlimits too, set
    in the container (the limits' numbers were once looked up there, where the runtime's
    modules cannot be loaded)."""
    rlimits, want = _every_rlimit()
    b = started(process={"rlimits": rlimits})
    p = rt("exec", b.id, "cat", "/proc/self/limits")
    assert p.returncode == 0, p.stderr
    got = _limits_rows(p.stdout)
    assert {row: got[row] for row in want} == want


def test_rlimit_nofile_enforced(run_in):
    out = ok(
        run_in(sh("ulimit -n"), process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}]})
    )
    assert out.strip() == "64"


def test_oom_score_adj_set(run_in):
    assert ok(run_in(sh("cat /proc/self/oom_score_adj"), process={"oomScoreAdj": 123})).strip() == "123"


def test_oom_score_adj_absent_is_untouched(run_in):
    """config.md: if oomScoreAdj is not set, the runtime MUST NOT change oom_score_adj.
    The caller raises its own value (no privilege needed) and the container must see it."""
    out = ok(
        run_in(sh("cat /proc/self/oom_score_adj"), run_kw={"prelude": "echo 234 > /proc/self/oom_score_adj"})
    )
    assert out.strip() == "234"


@pytest.mark.parametrize("nnp,want", [(True, "1"), (False, "0")])
def test_no_new_privileges(run_in, nnp, want):
    out = ok(run_in(sh("cat /proc/self/status"), process={"noNewPrivileges": nnp}))
    assert status_field(out, "NoNewPrivs") == [want]


# ---- capabilities ----------------------------------------------------------------------------------------

CAP_BITS = {
    "CAP_KILL": 5,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_AUDIT_WRITE": 29,
    "CAP_SYS_ADMIN": 21,
    "CAP_CHOWN": 0,
}


def capmask(*names):
    return sum(1 << CAP_BITS[n] for n in names)


def test_capabilities_default_set(run_in):
    out = ok(run_in(sh("cat /proc/self/status")))
    want = capmask("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    # (Ambient capabilities need them inheritable too, which this config does not ask for.)
    for field in ("CapBnd", "CapEff", "CapPrm"):
        got = int(status_field(out, field)[0], 16)
        assert got == want, f"{field}: {got:#x} != {want:#x}"


def test_capabilities_custom(run_in):
    caps = {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}
    out = ok(run_in(sh("cat /proc/self/status"), process={"capabilities": caps}))
    assert int(status_field(out, "CapBnd")[0], 16) == capmask("CAP_CHOWN", "CAP_KILL")
    assert int(status_field(out, "CapEff")[0], 16) == capmask("CAP_CHOWN")
    assert int(status_field(out, "CapAmb")[0], 16) == 0


def test_capabilities_unknown_is_a_warning_not_an_error(run_in):
    """config.md: capabilities that cannot be granted MUST be logged as a warning; runtimes SHOULD NOT fail."""
    caps = {k: ["CAP_KILL", "CAP_CONFORMANCE_BOGUS"] for k in ("bounding", "effective", "permitted")}
    assert ok(run_in(["true"], process={"capabilities": caps})) == ""


# ---- stdio and fds ---------------------------------------------------------------------------------------


def test_stdout_and_stderr_reach_the_caller(run_in):
    p = run_in(sh("echo to-out; echo to-err >&2"))
    assert ok(p) == "to-out\n"
    assert p.stderr == "to-err\n"


def test_stdin_reaches_the_container(run_in):
    assert ok(run_in(["cat"], run_kw={"input": "line 1\nline 2\n"})) == "line 1\nline 2\n"


def test_large_output(run_in):
    out = ok(run_in(sh("head -c 1000000 /dev/zero | tr '\\0' x")))
    assert out == "x" * 1000000


def test_not_a_terminal(run_in):
    assert ok(run_in(sh("[ -t 0 ] || [ -t 1 ] || echo no-tty"))) == "no-tty\n"


# The shell's own fds ($$, not ls's), listed by ls straight to stdout: ash holds extra fds while it
# sets up a pipeline or a redirection.
FD_SCRIPT = "ls /proc/$$/fd; echo --; cat <&3 2>/dev/null || echo NO-FD-3"


@pytest.fixture
def fd3_file(tmp_path):
    f = tmp_path / "fd3"
    f.write_text("through fd 3\n")
    return f


def test_preserve_fds(run_in, fd3_file):
    out = ok(run_in(sh(FD_SCRIPT), extra=["--preserve-fds", "1"], run_kw={"prelude": f"exec 3<{fd3_file}"}))
    fds, content = out.split("--\n")
    assert sorted(fds.split(), key=int) == ["0", "1", "2", "3"]
    assert content == "through fd 3\n"


def test_extra_fd_not_passed_without_preserve_fds(run_in, fd3_file):
    out = ok(run_in(sh(FD_SCRIPT), run_kw={"prelude": f"exec 3<{fd3_file} 4<{fd3_file} 7<{fd3_file}"}))
    fds, content = out.split("--\n")
    assert sorted(fds.split(), key=int) == ["0", "1", "2"], "fds leaked into the container"
    assert content == "NO-FD-3\n"


def test_no_runtime_fds_leak(rt, make_bundle):
    """create + start: the process has only stdio (whatever the runtime used for setup is closed)."""
    b = make_bundle(["sleep", "1000"])
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    pid = rt.state_json(b.id)["pid"]

    def execed():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == b"sleep\x001000\x00"

    wait_for(execed, what="init to exec the process")
    assert sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]


# ---- signals: the program starts with none ignored and none blocked ----------------------------

SIG_STATUS = ["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]


def sig_masks(out: str) -> dict:
    return {line.split(":")[0]: line.split()[1] for line in out.splitlines()}


NONE = {"SigBlk": "0" * 16, "SigIgn": "0" * 16}


def test_the_process_starts_with_no_signal_ignored_or_blocked(run_in):
    """An ignored signal stays ignored across execve: a runtime that ignores one (CPython
    ignores SIGPIPE and SIGXFSZ) must give the program the defaults, or `yes | head -1` never
    ends `yes` by SIGPIPE."""
    assert sig_masks(ok(run_in(SIG_STATUS))) == NONE


def test_the_started_init_has_no_signal_ignored_or_blocked(rt, started):
    b = started()
    pid = rt.state_json(b.id)["pid"]

    def execed():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == b"sleep\x001000\x00"

    wait_for(execed, what="init to exec the process")
    with open(f"/proc/{pid}/status") as f:
        assert sig_masks("".join(line for line in f if line.startswith(("SigBlk:", "SigIgn:")))) == NONE


@pytest.mark.parametrize("prelude", [None, "trap '' INT HUP QUIT"])
def test_an_exec_process_starts_with_no_signal_ignored_or_blocked(rt, started, prelude):
    """Nor what the caller of exec ignores (a shell's background job, nohup)."""
    b = started()
    assert sig_masks(ok(rt("exec", b.id, *SIG_STATUS, prelude=prelude))) == NONE


def test_a_pipe_ends_its_writer_by_sigpipe(run_in):
    """`yes | head -n 1`: yes dies of SIGPIPE (status 141), not of a write error (status 1)."""
    out = ok(run_in(["sh", "-c", '{ (yes; echo "status $?" >&2) | head -n 1; } 2>&1']))
    assert out.split() == ["y", "status", "141"], out


@pytest.mark.parametrize(
    "content, reason", [("junk\n", "exec format error"), ("#!/no/interp\n", "no such file")]
)
def test_exec_whose_execve_fails_says_why(rt, started, content, reason):
    """A program the lookup finds (a file with an execute bit) that the kernel will not run:
    exec fails and the process's stderr says why (runc: `exec /tmp/x: exec format error`), not
    a silent exit."""
    b = started()
    ok(rt("exec", b.id, "sh", "-c", f"printf '{content}' > /tmp/x && chmod +x /tmp/x"))
    p = rt("exec", b.id, "/tmp/x")
    assert p.returncode != 0
    assert any("/tmp/x" in ln and reason in ln for ln in p.stderr.splitlines()), p.stderr
