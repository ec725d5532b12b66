"""gonum.decimal is int() for base-10 text, and the numbers the commands read never reach int():
CPython's first base-10 conversion calls the C library's log(), which maps ~176 KiB of libm into
the process (docs/PERFORMANCE.md, "The first int() of a command")."""

import shutil
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import preload_env
from hypothesis import given
from hypothesis import strategies as st

from ocirt.gonum import decimal


def _int_or_error(text):
    try:
        return int(text)
    except ValueError:
        return ValueError


def _decimal_or_error(text):
    try:
        return decimal(text)
    except ValueError:
        return ValueError


EDGES = [
    "0", "-0", "+5", " 42\n", "007", "-", "+", "", " ", "1_0", "12a", "1 2", "٣", "²", "4" * 41,
    "18446744073709551615", "-9223372036854775808", "\t-17 ", b"17", b" -3\n", b"x", b"", b"+0",
]  # fmt: skip


@pytest.mark.parametrize("text", EDGES)
def test_decimal_is_int_on_edges(text):
    assert _decimal_or_error(text) == _int_or_error(text)


@given(st.one_of(st.integers().map(str), st.text(alphabet=" +-0123456789_\n\t٣", max_size=12)))
def test_decimal_is_int(text):
    assert _decimal_or_error(text) == _int_or_error(text)
    raw = text.encode()
    assert _decimal_or_error(raw) == _int_or_error(raw)


# A log() that says it was called: the C library's, preloaded before it.
SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>

double log(double x) {
    static double (*real)(double);
    if (!real)
        real = (double (*)(double))dlsym(RTLD_NEXT, "log");
    write(2, "log()\n", 6);
    return real(x);
}
"""

# What create, state, start, kill and delete convert: config.json's and state.json's numbers,
# ociVersion's major, /proc/sys/kernel/cap_last_cap, /proc/PID/stat's start time and threads,
# a signal's number.
COMMANDS_NUMBERS = textwrap.dedent(
    """
    import posix, sys
    from ocirt import attach_window, capabilities, jsonio, signals, state, validate
    doc = jsonio.loads('{"ociVersion": "1.2.0", "n": [0, -1, 1024, 18446744073709551615]}')
    validate.check_version(doc)
    capabilities.last_cap()
    state.proc_start_time(posix.getpid())
    attach_window.threads()
    signals.parse_signal("9")
    if sys.argv[1:] == ["control"]:
        int("5")
    """
)


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler")
def test_the_commands_numbers_do_not_call_log(tmp_path):
    env = preload_env(tmp_path, SHIM)

    def stderr(*args):
        return subprocess.run(
            [sys.executable, "-c", COMMANDS_NUMBERS, *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stderr

    if "log()" not in stderr("control"):
        pytest.skip("this Python's int() does not call the C library's log()")
    assert stderr() == ""
