import sys

from .. import jsonio
from ..cli import need_id
from ..container import OpenContainer

USAGE = "state <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    c = OpenContainer.open(g.root, need_id(args, "state"), lock=False)
    g.log.debug(f"state: container {c.state.id}: init pid {c.state.pid}, state dir {c.sd.path}")
    text = jsonio.dumps(runc_state(c.state, c.state.oci(c.status())), indent="  ")
    sys.stdout.write(jsonio.go_escaped(text) + "\n")  # as Go's json.MarshalIndent writes strings
    return 0


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
