"""A foreground run's or exec's waits for its process pass on a signal that comes at any moment,
even one that comes just before the wait's system call, after the interpreter's last look at its
signals: the C handler takes it, and the Python handler (signals.Relay) would run only once the
call returned: waitpid at the process's exit, the terminal's select at its next output, where the
process may be waiting for that very signal (a conformance run saw
test_foreground_exec_forwards_signals[SIGALRM] hang so, once in 55)."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import REPO, preload_env

# The C library's `call` (waitpid, or a select that waits for the process alone), which raises
# SIGALRM first, once: the signal comes after the interpreter's last check, before the system
# call (as a preemption right there would).
SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/types.h>
#include <sys/wait.h>

static int raised;

static void raise_once(void) {
    if (!raised) {
        raised = 1;
        raise(SIGALRM);
    }
}

#ifdef SHIM_WAITPID
pid_t waitpid(pid_t pid, int *status, int options) {
    static pid_t (*real)(pid_t, int *, int);
    if (!real)
        real = (pid_t (*)(pid_t, int *, int))dlsym(RTLD_NEXT, "waitpid");
    if (pid == -1)
        raise_once();
    return real(pid, status, options);
}
#else
int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t) {
    static int (*real)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    if (!real)
        real = (int (*)(int, fd_set *, fd_set *, fd_set *, struct timeval *))dlsym(RTLD_NEXT, "select");
    if (r && !FD_ISSET(0, r))  /* (stdin at its end: a select that waits for the process) */
        raise_once();
    return real(n, r, w, e, t);
}
#endif
"""

# The process ends with 5 on SIGALRM; without one, by itself with 0 after ~10 s (a bound on the
# failure, not a timed assertion: 0 means the signal was not passed on). With a terminal, the
# process holds the pty's slave side, and the proxy ends when it exits.
SCRIPT = textwrap.dedent(
    """
    import posix, sys, _signal
    from ocirt import console
    from ocirt.container import wait_init
    from ocirt.signals import Relay

    terminal = sys.argv[1] == "select"
    relay = Relay()
    r, w = posix.pipe()
    if terminal:
        master, slave = posix.openpty()
    pid = posix.fork()
    if pid == 0:
        _signal.signal(_signal.SIGALRM, lambda s, f: posix._exit(5))
        posix.write(w, b"x")
        for _ in range(100):
            _signal.sigtimedwait([], 0.1)  # (no signal asked: a 0.1 s sleep, 10 s in all)
        posix._exit(0)
    posix.read(r, 1)  # its handler is set
    relay.to(pid)
    if terminal:
        posix.close(slave)
        console.proxy(master, None)
    print(wait_init(pid, relay))
    """
)


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler")
@pytest.mark.parametrize("call", ["waitpid", "select"])
def test_a_signal_just_before_the_wait_is_passed_on(tmp_path, call):
    env = preload_env(tmp_path, SHIM, *(["-DSHIM_WAITPID"] if call == "waitpid" else []))
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, call],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (p.stdout, p.stderr) == ("5\n", "")


# A child forked while create's stop handlers are in place (pyroute2 forks one to open a socket in
# the container's network namespace, and ends it with SIGTERM) ends by the signal: it took the
# handler's Stopped for its own (exit 0 here) and create waited for it for ever.
FORKED_CHILD = textwrap.dedent(
    """
    import posix, _signal
    from ocirt.signals import stop_like_interrupt

    stop_like_interrupt()
    r, w = posix.pipe()
    pid = posix.fork()
    if pid == 0:
        try:
            posix.write(w, b"x")
            _signal.sigtimedwait([], 10)  # (no signal asked: a 10 s sleep)
        finally:
            posix._exit(0)
    posix.read(r, 1)
    posix.kill(pid, _signal.SIGTERM)
    _, status = posix.waitpid(pid, 0)
    print(posix.WIFSIGNALED(status) and posix.WTERMSIG(status))
    """
)


def test_a_forked_child_of_create_ends_by_a_stop_signal():
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run(
        [sys.executable, "-c", FORKED_CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert (p.stdout, p.stderr) == (f"{int(signal.SIGTERM)}\n", "")
