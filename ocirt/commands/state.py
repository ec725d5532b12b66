import sys

from .. import jsonio
from ..cli import need_id
from ..container import OpenContainer

USAGE = "state <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    c = OpenContainer.open(g.root, need_id(args, "state"), lock=False)
    g.log.debug(f"state: container {c.state.id}: init pid {c.state.pid}, state dir {c.sd.path}")
    sys.stdout.write(jsonio.dumps(c.state.oci(c.status()), indent="  ") + "\n")
    return 0
