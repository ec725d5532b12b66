"""What failed once the container's processes were started, in runc 1.1.5's words: engines pass
the runtime's last error line on (`OCI runtime create failed: runc create failed: unable to
start container process: ...`), and people and tools around them look for its phrases. A
failure of the container's setup (a mount, a hook) comes after "error during container init: ";
one of the process's own setup (the program's lookup) and every one of `exec`, without it. What
follows is each runtime's own account."""

import json
import re

from runtime import one_line

START = "unable to start container process: "
IN_INIT = "error during container init: "
NOT_FOUND = 'exec: "nosuchprogram": executable file not found in $PATH'


def message(p):
    """The msg of a failed command's one-line `level=error` output."""
    assert p.returncode != 0, f"the command succeeded: {p.stdout!r}"
    m = re.search(r'msg="(.*)"$', one_line(p.stderr))
    assert m, p.stderr
    return json.loads(f'"{m.group(1)}"')  # the text format quotes it as Go does


def test_a_program_not_found_at_create(rt, make_bundle):
    b = make_bundle(["nosuchprogram"])
    assert message(rt.create(b.id, b)).endswith(f"create failed: {START}{NOT_FOUND}")


def test_a_program_not_found_at_run(rt, make_bundle):
    b = make_bundle(["nosuchprogram"])
    assert message(rt.run(b.id, b)).endswith(f"run failed: {START}{NOT_FOUND}")


def test_a_mount_that_fails_is_an_error_during_container_init(rt, make_bundle):
    b = make_bundle(
        ["true"],
        mutate=lambda cfg: cfg["mounts"].append(
            {"destination": "/mnt", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}
        ),
    )
    msg = message(rt.create(b.id, b))
    assert f"create failed: {START}{IN_INIT}" in msg and "/no/such/source" in msg, msg


def test_a_create_runtime_hook_that_fails_is_an_error_during_container_init(rt, make_bundle):
    b = make_bundle(["true"], hooks={"createRuntime": [{"path": "/bin/false"}]})
    msg = message(rt.create(b.id, b))
    assert f"create failed: {START}{IN_INIT}" in msg and "error running hook" in msg, msg


def test_a_program_not_found_at_exec(rt, started):
    b = started()
    assert message(rt("exec", b.id, "nosuchprogram")) == f"exec failed: {START}{NOT_FOUND}"
