import os
import signal

from ..cli import Opt, need_id
from ..container import Container, wait_init
from ..spawn import create
from . import create as create_cmd

USAGE = "run [command options] <container-id>"
OPTIONS = create_cmd.OPTIONS + (
    Opt("detach", "d", help="detach from the container's process"),
    Opt("keep", help="do not delete the container after it exits"),
)

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)


def main(g, o, args) -> int:
    from ..errors import OcirtError
    container_id = need_id(args, "run")
    detach = o["detach"]
    try:
        sd, state = create(create_cmd.options_from(g, o, container_id, subreaper=not detach),
                           g.kernel())
    except OcirtError as e:
        e.message = f"ocirt run failed: {e.message}"
        raise
    c = Container(sd, state)
    try:
        pid = state.pid
        if not detach:
            for sig in FORWARDED:
                signal.signal(sig, lambda s, f: _forward(pid, s))
        c.start()
    except BaseException:
        c.delete(force=True)
        c.close()
        raise
    if detach:
        c.close()
        return 0
    c.close()
    code = wait_init(pid)
    if not o["keep"]:
        c = Container.open(g.root, container_id)
        try:
            c.delete(force=True)
        finally:
            c.close()
    return code


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
