import _signal

from .. import signals
from ..cli import Opt, UsageError, need_id
from ..container import OpenContainer
from ..errors import OcirtError

USAGE = "kill [command options] <container-id> [signal]"
OPTIONS = (Opt("all", "a", help="send the specified signal to all processes inside the container"),)


def parse_signal(text: str) -> int:
    """signals.parse_signal, its error a usage error of the command line."""
    try:
        return signals.parse_signal(text)
    except OcirtError as e:
        raise UsageError(e.message) from None


def main(g, o, args) -> int:
    container_id = need_id(args, "kill")
    with OpenContainer.open(g.root, container_id) as c:  # first, as runc's: one that does not
        # exist is that error, whatever the signal; an empty signal argument is the default one
        sig = parse_signal(args[1]) if len(args) > 1 and args[1] else _signal.SIGTERM
        g.log.debug(
            f"kill: signal {sig} to {'every process of' if o['all'] else 'the init of'} "
            f"container {container_id} (init pid {c.state.pid})"
        )
        c.kill(sig, all_processes=o["all"])
    return 0
