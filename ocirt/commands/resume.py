"""`resume <id>`: thaw a paused container."""
from ..cli import exact_id
from ..container import OpenContainer

USAGE = "resume <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    with OpenContainer.open(g.root, exact_id(args, "resume")) as c:
        c.resume()
    return 0
