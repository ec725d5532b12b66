import posix  # not os: see ocirt/paths.py
import sys

from .. import jsonio
from ..cli import need_id
from ..container import OpenContainer
from ..errors import OcirtError

USAGE = "state <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    c = OpenContainer.open(g.root, need_id(args, "state"), lock=False)
    g.log.debug(f"state: container {c.state.id}: init pid {c.state.pid}, state dir {c.sd.path}")
    text = jsonio.dumps(runc_state(c.state, c.state.oci(c.status())), indent="  ")
    write_stdout(jsonio.go_escaped(text) + "\n")  # as Go's json.MarshalIndent writes strings
    return 0


def write_stdout(text: str) -> None:
    """A command's output, written out now (not at the interpreter's last flush, which fails
    in silence: `ocirt state ID >/dev/full` and `ocirt list | true` ended with 120 and no
    word): what cannot be written (a full device, a reader gone: EPIPE, RLIMIT_FSIZE) is the
    command's error, one line in Go's words ("write /dev/stdout: no space left on device").
    What stays in the buffer goes to /dev/null instead, so that the last flush does not fail
    again (state, list, ps, features and events print through this)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as e:
        try:
            null = posix.open("/dev/null", posix.O_WRONLY | posix.O_CLOEXEC)
            posix.dup2(null, sys.stdout.fileno())
            posix.close(null)
        except (OSError, ValueError):
            pass
        raise OcirtError("write /dev/stdout", e.errno) from None


def runc_state(st, oci: dict) -> dict:
    """runtime.md's state with what runc's adds (the state MAY include additional properties),
    in runc's order: rootfs, created (as Go prints a time: no trailing zeros in the fraction)
    and owner (always empty in runc's `state`); annotations sorted, as Go writes a map."""
    out = {k: oci[k] for k in ("ociVersion", "id", "pid", "status", "bundle")}
    out["rootfs"] = st.rootfs
    out["created"] = jsonio.go_time(st.created)
    if oci.get("annotations"):
        out["annotations"] = dict(sorted(oci["annotations"].items()))
    out["owner"] = ""
    return out
