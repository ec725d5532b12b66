"""The status while `start` runs the startContainer hooks (runtime.md, steps 7 and 8): `created`
until the program is executed, `running` once `start` returned, and so even when the `start`
that ran them was killed meanwhile (runc 1.1.5 then says `created` for ever)."""

import signal
import time

import pytest
from runtime import ok, wait_for

HOOK_SECONDS = 2


def slow_start_bundle(make_bundle, out):
    """A startContainer hook that says it began, sleeps, and says it ended; a program that says
    it runs (all in `out`, bind-mounted at /tmp/out)."""
    script = f"echo x >> /tmp/out/hook-began; sleep {HOOK_SECONDS}; echo x >> /tmp/out/hook-ended"

    def mutate(cfg):
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
        cfg["mounts"].append(
            {"destination": "/tmp/out", "type": "bind", "source": str(out), "options": ["rbind", "rw"]}
        )

    return make_bundle(["sh", "-c", "echo x >> /tmp/out/program; exec sleep 1000"], mutate=mutate)


def start_and_wait_for_the_hook(rt, b, out):
    ok(rt.create(b.id, b))
    start = rt.popen("start", b.id)
    wait_for(lambda: (out / "hook-began").exists(), what="the startContainer hook")
    return start


def finish(proc, timeout=HOOK_SECONDS + 20):
    proc.wait(timeout=timeout)
    proc.err_file.seek(0)
    return proc.returncode, proc.err_file.read().decode(errors="replace")


def test_created_while_the_start_container_hooks_run(rt, make_bundle, out):
    """Status `running` means the program was executed: not yet while the hooks run; and once
    `start` returned, it is."""
    b = slow_start_bundle(make_bundle, out)
    start = start_and_wait_for_the_hook(rt, b, out)
    assert rt.status(b.id) == "created"
    assert not (out / "program").exists()
    assert finish(start) == (0, "")
    assert rt.status(b.id) == "running"
    wait_for(lambda: (out / "program").exists(), what="the program")
    assert rt.status(b.id) == "running"


@pytest.mark.runc_deviates("a start killed during the hooks leaves exec.fifo: `created` for ever")
def test_a_start_killed_during_the_hooks(rt, make_bundle, out):
    """`created` while the hooks go on, `running` once the program runs, though no `start`
    is left to tell; it can be killed and deleted as any running container."""
    b = slow_start_bundle(make_bundle, out)
    start = start_and_wait_for_the_hook(rt, b, out)
    start.send_signal(signal.SIGKILL)
    start.wait()
    assert rt.status(b.id) == "created"
    wait_for(lambda: (out / "program").exists(), timeout=HOOK_SECONDS + 10, what="the program")
    assert rt.status(b.id) == "running"
    assert (out / "hook-began").read_text() == "x\n"  # the hooks ran once
    ok(rt.kill(b.id, "KILL"))
    rt.wait_status(b.id, "stopped")
    ok(rt.delete(b.id))


@pytest.mark.runc_deviates("a second start, once the hooks are done, fails: 'already running'")
def test_a_start_after_a_killed_one_finishes_it(rt, make_bundle, out):
    """The container is still `created` (its program not executed): a second `start` is legal,
    and returns once the program is executing, which the hooks did not run for again."""
    b = slow_start_bundle(make_bundle, out)
    start = start_and_wait_for_the_hook(rt, b, out)
    start.send_signal(signal.SIGKILL)
    start.wait()
    again = rt.start(b.id)
    assert (again.returncode, again.stderr) == (0, "")
    assert rt.status(b.id) == "running"
    wait_for(lambda: (out / "program").exists(), what="the program")
    assert (out / "hook-began").read_text() == "x\n"


@pytest.mark.parametrize("how", ["kill", "delete --force"])
def test_a_killed_start_leaves_a_created_container_to_end(rt, make_bundle, out, how):
    """Killed during the hooks, while `created`: it ends as any created container, and the
    program is never executed."""
    b = slow_start_bundle(make_bundle, out)
    start = start_and_wait_for_the_hook(rt, b, out)
    start.send_signal(signal.SIGKILL)
    start.wait()
    assert rt.status(b.id) == "created"
    if how == "kill":
        ok(rt.kill(b.id, "KILL"))
        rt.wait_status(b.id, "stopped")
    else:
        ok(rt.delete(b.id, force=True))
        assert rt.state(b.id).returncode != 0
    time.sleep(HOOK_SECONDS + 0.5)
    assert not (out / "program").exists()
    if how == "kill":
        ok(rt.delete(b.id))
