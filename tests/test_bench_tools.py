"""benchmarks/rss-at-exit.sh: a command's VmHWM and where it is, read at its _exit with ASLR
off (the tool that tells two builds' memory apart by tens of KiB)."""

import os
import shutil
import subprocess
import sys

import pytest
from cli_helpers import REPO

TOOL = os.path.join(REPO, "benchmarks", "rss-at-exit.sh")


@pytest.mark.skipif(not (shutil.which("cc") and shutil.which("setarch")), reason="needs cc and setarch")
def test_rss_at_exit_reads_the_process_at_its_exit():
    code = "import os; b = bytearray(8 << 20); b[::4096] = b'x' * len(b[::4096]); os._exit(3)"
    p = subprocess.run(
        ["sh", TOOL, sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 3, p.stderr  # the command's own exit status
    head, *places = p.stdout.splitlines()
    fields = head.split()
    hwm = int(fields[fields.index("VmHWM:") + 1])
    assert hwm > 8 << 10  # the 8 MiB it touched, and the interpreter
    assert any(line.split()[-1] == "[heap]" or line.split()[-1] == "[anon]" for line in places), p.stdout


def test_rss_at_exit_wants_a_command():
    p = subprocess.run(["sh", TOOL], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.startswith("usage:")
