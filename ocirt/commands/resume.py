"""`resume <id>`: thaw a paused container."""

from ..cli import exact_id
from ..container import OpenContainer

USAGE = "resume <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    with OpenContainer.open(g.root, exact_id(args, "resume")) as c:
        g.log.debug(f"resume: thawing cgroup {c.cgroup().path()} of container {c.state.id}")
        c.resume()
    return 0
