"""The signal state create and run leave to the container's process (commands/create.py
no_inherited_signal_state): nothing the caller ignored or blocked, as with runc, whose Go runtime
catches every signal; this command itself still does nothing on those signals."""

import os
import signal
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = [p for p in sys.path if p.endswith("-packages")]
PRELUDE = f"REPO = {REPO!r}\nSITE = {SITE!r}\n"

SCRIPT = r"""
import os, signal, sys
sys.path[0:0] = [REPO, *SITE]  # (-I -S: cffi, should glibc's own two come ignored)
from ocirt.commands.create import no_inherited_signal_state
no_inherited_signal_state()
os.kill(os.getpid(), signal.SIGHUP)  # ignored before: this process still survives it
pid = os.fork()
if pid == 0:
    from ocirt.signals import execve  # the init's (resets Python's own SIGPIPE and SIGXFSZ)
    execve("/bin/grep", ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"], {})
os.waitpid(pid, 0)
print(signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN)
"""


def _masks(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("Sig"):
            key, value = line.split(":")
            out[key] = int(value, 16)
    return out


def _preexec():
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM, signal.SIGALRM})


def test_ignored_and_blocked_signals_are_not_passed_on():
    p = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PRELUDE + SCRIPT],
        preexec_fn=_preexec,
        capture_output=True,
        text=True,
        check=True,
    )
    masks = _masks(p.stdout)
    assert masks == {"SigBlk": 0, "SigIgn": 0}, p.stdout
    assert p.stdout.rstrip().endswith("True")  # Python's own SIGPIPE stays ignored in this process


def test_nothing_to_do_changes_nothing():
    p = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            PRELUDE + SCRIPT.replace("os.kill(os.getpid(), signal.SIGHUP)", ""),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert _masks(p.stdout) == {"SigBlk": 0, "SigIgn": 0}, p.stdout
