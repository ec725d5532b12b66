"""`resume <id>`: thaw a paused container."""
from ..container import OpenContainer
from .pause import exact_id

USAGE = "resume <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    with OpenContainer.open(g.root, exact_id(args, "resume")) as c:
        c.resume()
    return 0
