from ..cli import need_id
from ..container import OpenContainer

USAGE = "start <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    with OpenContainer.open(g.root, need_id(args, "start")) as c:
        g.log.debug(f"start: container {c.state.id}: opening exec.fifo of init pid {c.state.pid}")
        c.start()
        g.log.debug(f"start: container {c.state.id} started")
    return 0
