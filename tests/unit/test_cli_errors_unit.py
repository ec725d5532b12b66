"""cli.main's last lines of defence: what no command's own handler took is still one line."""

import sys

from ocirt.cli import main


def test_memory_error_is_out_of_memory(tmp_path, capsys, monkeypatch):
    """A caller's RLIMIT_AS or RLIMIT_DATA the command does not fit in: 'out of memory', 1 (it
    was 'internal error: MemoryError: ', and a chained traceback now and then)."""
    import ocirt.commands.state as state_cmd

    def oom(*_):
        raise MemoryError

    monkeypatch.setattr(state_cmd, "main", oom)
    assert main(["--root", str(tmp_path), "state", "x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith('msg="out of memory"'), err
    assert "ocirt.commands.state" in sys.modules


def test_a_pointer_is_one_printable_line():
    """Member names as JSON escapes them where a line or an encoding would break (a newline,
    an escape, a lone surrogate: bytes that are no UTF-8); everything else as it is."""
    from ocirt.errors import json_pointer, printable

    assert json_pointer(["annotations", "a/b~c", "é ü"]) == "/annotations/a~1b~0c/é ü"
    assert json_pointer(["annotations", "\n", "\r\t", "\x1b[2J", "\ud800"]) == (
        "/annotations/\\n/\\r\\t/\\u001b[2J/\\ud800"
    )
    assert printable("no change: ✓") == "no change: ✓"
    assert printable("two\nlines") == "two\\nlines"
