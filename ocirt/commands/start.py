from ..cli import need_id
from ..container import Container

USAGE = "start <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    c = Container.open(g.root, need_id(args, "start"))
    try:
        c.start()
    finally:
        c.close()
    return 0
