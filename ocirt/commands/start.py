from ..cli import need_id
from ..container import OpenContainer

USAGE = "start <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    with OpenContainer.open(g.root, need_id(args, "start")) as c:
        c.start()
    return 0
