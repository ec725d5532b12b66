"""Odd input to the commands that print a container (`state`, `list`) and to foreground
`run`/`exec`: the output is runc's, the command ends cleanly. Each test passes on runc and on
ocirt."""

import json


def test_state_escapes_annotations_as_go_does(rt, make_bundle):
    """`state` writes strings as Go's json.MarshalIndent does, as `list -f json` does: <, > and &
    as \\u003c, \\u003e and \\u0026, U+2028 and U+2029 escaped (ocirt's state wrote them as they
    are, so that the two commands' bytes differed for one annotation)."""
    b = make_bundle(["sleep", "1000"], annotations={"a<b>&": "x\u2028y\u2029z"})
    p = rt.create(b.id, b)
    assert p.returncode == 0, p.stderr
    p = rt.state(b.id)
    assert p.returncode == 0, p.stderr
    assert '"a\\u003cb\\u003e\\u0026": "x\\u2028y\\u2029z"' in p.stdout, p.stdout
    assert json.loads(p.stdout)["annotations"] == {"a<b>&": "x\u2028y\u2029z"}
