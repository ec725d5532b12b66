"""Hooks against runc 1.1.5: where a hook's stdout and stderr go (not the runtime's: with an
engine's `create` they are the container's log), what a failing hook's error tells, the state on
stdin as Go writes it, args and env as given, and hooks that leave a child behind, write a lot or
do not read their stdin. What a failure does to the lifecycle is test_lifecycle_spec.py's."""

import json
import os
import signal
import time

import pytest
from runtime import assert_failed_cleanly, one_line, sh

SLEEP = ["sleep", "1000"]
CREATE_HOOKS = ("prestart", "createRuntime", "createContainer")


def hook(script, **kw):
    """A hook running a shell script (/bin/sh resolves in either namespace)."""
    return {"path": "/bin/sh", "args": ["sh", "-c", script], **kw}


def chatty(name):
    return hook(f"echo {name}-out; echo {name}-err >&2")


def with_hooks(hooks, *mounts):
    def mutate(cfg):
        cfg["hooks"] = hooks
        cfg["mounts"].extend(mounts)

    return mutate


def out_mount(host_dir):
    return {"destination": "/tmp/out", "type": "bind", "source": str(host_dir), "options": ["rbind", "rw"]}


# ---- a hook's stdout and stderr ----------------------------------------------------------------


def test_hooks_output_is_not_the_runtimes(rt, make_bundle):
    """Every kind of hook writes to its stdout and stderr; create, start and delete print
    nothing of it (runc keeps it for the hook's error)."""
    names = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
    b = make_bundle(SLEEP, mutate=with_hooks({n: [chatty(n)] for n in names}))
    for p in (rt.create(b.id, b), rt.start(b.id), rt.delete(b.id, force=True)):
        assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_a_foreground_runs_output_is_its_programs_alone(rt, make_bundle):
    """`run`'s stdout and stderr are the program's: the hooks' output is not mixed in."""
    names = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart")
    b = make_bundle(
        sh("echo program; echo program-err >&2"), mutate=with_hooks({n: [chatty(n)] for n in names})
    )
    p = rt.run(b.id, b)
    assert (p.returncode, p.stdout, p.stderr) == (0, "program\n", "program-err\n")


@pytest.mark.parametrize("name", CREATE_HOOKS)
def test_a_failing_hooks_error_tells_its_output(rt, make_bundle, name):
    """One line (its newlines escaped) in runc's words: `error running hook ...: exit status 3,
    stdout: X, stderr: Y`."""
    b = make_bundle(SLEEP, mutate=with_hooks({name: [hook("echo said-out; echo said-err >&2; exit 3")]}))
    p = rt.create(b.id, b)
    assert p.returncode != 0 and p.stdout == ""
    line = one_line(p.stderr)
    assert (
        "error running hook" in line and "exit status 3, stdout: said-out\\n, stderr: said-err\\n" in line
    ), line
    assert rt.status(b.id) is None


@pytest.mark.parametrize(
    "mode,content,why",
    [
        (0o644, "#!/bin/sh\n", "permission denied"),
        (0o755, "echo no interpreter line\n", "exec format error"),
        (0o755, "#!/no/such/interpreter\n", "no such file or directory"),
    ],
)
def test_a_hook_that_cannot_be_executed(rt, make_bundle, tmp_path, mode, content, why):
    """One line with the errno's text as Go prints it (runc: `fork/exec PATH: WHY`), and
    nothing left behind."""
    path = tmp_path / "hook"
    path.write_text(content)
    path.chmod(mode)
    b = make_bundle(SLEEP, mutate=with_hooks({"createRuntime": [{"path": str(path)}]}))
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p)
    assert f"{path}: {why}" in p.stderr, p.stderr


def test_a_hook_killed_by_a_signal_says_so(rt, make_bundle):
    b = make_bundle(SLEEP, mutate=with_hooks({"createRuntime": [hook("echo x; kill -9 $$")]}))
    p = rt.create(b.id, b)
    assert p.returncode != 0
    line = one_line(p.stderr)
    assert "error running hook" in line and "signal: killed, stdout: x\\n" in line, line


def test_a_hook_writing_much_more_than_a_pipe_holds_is_not_blocked(rt, make_bundle):
    big = "head -c 1000000 /dev/zero"
    b = make_bundle(SLEEP, mutate=with_hooks({"createRuntime": [hook(f"{big}; {big} >&2")]}))
    p = rt.create(b.id, b, timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_a_hook_that_does_not_read_a_large_state_runs(rt, make_bundle, out):
    """A state larger than a pipe holds (an annotation of 256 KiB), to a hook that never reads
    its stdin: the hook runs, and create neither blocks nor fails."""
    b = make_bundle(
        SLEEP,
        annotations={"big": "x" * (256 << 10)},
        mutate=with_hooks({"createRuntime": [hook(f"echo ran > {out}/ran")]}),
    )
    p = rt.create(b.id, b, timeout=30)
    assert p.returncode == 0, p.stderr
    assert (out / "ran").read_text() == "ran\n"


@pytest.mark.runc_deviates("runc 1.1.5 waits until a hook's background child closes the hook's stdout")
def test_a_hooks_background_child_does_not_hold_create(rt, make_bundle, out):
    """A hook that starts a daemon (its stdout and stderr inherited) and exits: create goes on
    when the hook exits (config.md: the hook is the process at `path`; a runtime that waits for
    its children too hangs for as long as they live)."""
    script = f"sleep 4 & echo $! > {out}/bg; echo started"
    b = make_bundle(SLEEP, mutate=with_hooks({"createRuntime": [hook(script)]}))
    t0 = time.monotonic()
    try:
        p = rt.create(b.id, b)
        took = time.monotonic() - t0
    finally:
        try:
            os.kill(int((out / "bg").read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    assert p.returncode == 0, p.stderr
    assert took < 3, f"create waited {took:.1f}s for the hook's child"


# ---- the state on stdin, args, env -----------------------------------------------------------


def test_hook_state_is_written_as_go_writes_it(rt, make_bundle, out):
    """Compact JSON (no spaces), the annotations, and no pid once the container is stopped
    (runtime.md: pid is REQUIRED for created and running only; runc omits a zero pid)."""
    hooks = {n: [hook(f"cat > {out}/{n}.json")] for n in ("createRuntime", "poststart", "poststop")}
    b = make_bundle(SLEEP, annotations={"org.example/a": "b c"}, mutate=with_hooks(hooks))
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    assert rt.delete(b.id, force=True).returncode == 0
    for name in hooks:
        raw = (out / f"{name}.json").read_text()
        state = json.loads(raw)
        assert raw == json.dumps(state, separators=(",", ":"), ensure_ascii=False), raw
        assert state["annotations"] == {"org.example/a": "b c"}
        assert state["id"] == b.id
    assert "pid" not in json.loads((out / "poststop.json").read_text())
    assert json.loads((out / "createRuntime.json").read_text())["pid"] > 0


def test_hook_args_and_env_are_the_configs(rt, make_bundle, out):
    """args[0] is the hook's argv[0] (not its path); `env` is its whole environment, an empty
    one included (not the runtime's)."""
    script = f"tr '\\0' '|' < /proc/$$/cmdline > {out}/args; env > {out}/env"
    hooks = {
        "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}/empty"], "env": []}],
        "createRuntime": [
            {"path": "/bin/sh", "args": ["my-hook", "-c", script, "one two"], "env": ["A=1", "B=x y"]}
        ],
    }
    b = make_bundle(SLEEP, mutate=with_hooks(hooks))
    assert rt.create(b.id, b, prelude="export LEAK=yes").returncode == 0
    assert (out / "args").read_text() == f"my-hook|-c|{script}|one two|"
    env = set((out / "env").read_text().split("\n"))
    assert {"A=1", "B=x y"} <= env and not any(e.startswith("LEAK=") for e in env), env
    empty = (out / "empty").read_text()
    assert "LEAK=" not in empty and "PATH=/usr" not in empty, empty


def test_a_container_hook_without_env_has_the_processs(rt, make_bundle, out):
    """No `env`: createContainer and startContainer, which run in the container, get the
    process's environment (runc's init runs them with it), not an empty one."""
    hooks = {  # (createContainer: in the rootfs, before the root is changed to it)
        "createContainer": [hook("env > tmp/out/createContainer")],
        "startContainer": [hook("env > /tmp/out/startContainer")],
    }
    b = make_bundle(
        SLEEP, mutate=with_hooks(hooks, out_mount(out)), process={"env": ["PATH=/bin", "MARK=proc"]}
    )
    assert rt.create(b.id, b, prelude="export LEAK=create").returncode == 0
    assert rt.start(b.id, prelude="export LEAK=start").returncode == 0
    for name in hooks:
        env = (out / name).read_text().split("\n")
        assert "MARK=proc" in env and not any(e.startswith("LEAK=") for e in env), (name, env)


def test_a_runtime_hook_without_env_has_the_runtimes(rt, make_bundle, out):
    """No `env`: the hooks in the runtime's namespaces get the environment of the runtime
    command that runs them (runc's; such a hook finds its programs in the caller's PATH).
    (poststart too, but runc 1.1.5 runs it in `create`.)"""
    hooks = {
        n: [{"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}/{n}"]}]
        for n in ("prestart", "createRuntime", "poststop")
    }
    b = make_bundle(SLEEP, mutate=with_hooks(hooks))
    assert rt.create(b.id, b, prelude="export LEAK=create").returncode == 0
    assert rt.start(b.id, prelude="export LEAK=start").returncode == 0
    assert rt.delete(b.id, force=True, prelude="export LEAK=delete").returncode == 0
    want = {"prestart": "create", "createRuntime": "create", "poststop": "delete"}
    for name, command in want.items():
        env = (out / name).read_text().split("\n")
        assert f"LEAK={command}" in env, (name, env)
        assert f"PATH={os.environ['PATH']}" in env, (name, env)


def test_a_runtime_hook_gets_the_callers_environment_as_it_was(rt, make_bundle, out):
    """Under the C locale (no LANG, no LC_*) the hook's environment is the caller's, nothing
    added: the runtime's own start may not leak into it (Python's locale coercion sets
    LC_CTYPE=C.UTF-8 in its own environment)."""
    hooks = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}/prestart"]}]}
    b = make_bundle(SLEEP, mutate=with_hooks(hooks))
    prelude = "unset LANG LANGUAGE LC_ALL LC_CTYPE; export MARK=caller"
    assert rt.create(b.id, b, prelude=prelude).returncode == 0
    env = (out / "prestart").read_text().split("\n")
    assert "MARK=caller" in env and not any(e.startswith("LC_") for e in env), env
    assert rt.delete(b.id, force=True).returncode == 0
