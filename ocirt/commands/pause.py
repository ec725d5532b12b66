"""`pause <id>`: freeze every process of the container (its cgroup's freezer)."""

from ..cli import exact_id  # commands/update.py imports it from here too
from ..container import OpenContainer

USAGE = "pause <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    with OpenContainer.open(g.root, exact_id(args, "pause")) as c:
        g.log.debug(f"pause: freezing cgroup {c.cgroup().path()} of container {c.state.id}")
        c.pause()
    return 0
