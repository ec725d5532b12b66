import posix  # not os: see ocirt/paths.py

from ..cli import need_id
from ..container import OpenContainer

USAGE = "start <container-id>"
OPTIONS = ()


def main(g, o, args) -> int:
    notify = None
    with OpenContainer.open(g.root, need_id(args, "start")) as c:
        g.log.debug(f"start: container {c.state.id}: opening exec.fifo of init pid {c.state.pid}")
        if posix.environ.get(b"NOTIFY_SOCKET"):  # systemd waits for the container's READY=
            notify = notify_socket(c)
        c.start()
        g.log.debug(f"start: container {c.state.id} started")
    if notify is not None:  # (the lock let go: the container can be acted on meanwhile)
        notify.wait_and_forward(c.state.pid, c.state.pid_start, c.state.pid)
    return 0


def notify_socket(c):
    """Both ends of NOTIFY_SOCKET ready before the process runs (it may notify at once): the
    host's reached, the container's bound (in the dir its create made)."""
    from ..sdnotify import Notify, environ

    c.status().check("start")  # (a stopped container's error first, as without the variable)
    notify = Notify.connect(environ(b"NOTIFY_SOCKET"))
    notify.bind(c.sd.path)
    return notify
