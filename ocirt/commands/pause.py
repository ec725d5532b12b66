"""`pause <id>`: freeze every process of the container (its cgroup's freezer)."""
from ..cli import UsageError
from ..container import OpenContainer

USAGE = "pause <container-id>"
OPTIONS = ()


def exact_id(args: list, command: str) -> str:
    """runc's checkArgs(ctx, 1, exactArgs)."""
    if len(args) != 1:
        raise UsageError(f'ocirt: "{command}" requires exactly 1 argument(s)')
    return args[0]


def main(g, o, args) -> int:
    with OpenContainer.open(g.root, exact_id(args, "pause")) as c:
        c.pause()
    return 0
