"""`resume <id>`: thaw a paused container."""
from ..container import Container
from .pause import exact_id

USAGE = "resume <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    c = Container.open(g.root, exact_id(args, "resume"))
    try:
        c.resume()
    finally:
        c.close()
    return 0
