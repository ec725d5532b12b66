import _signal

from ..cli import Opt, UsageError, need_id
from ..container import Container

USAGE = "kill [command options] <container-id> [signal]"
OPTIONS = (Opt("all", "a", help="send the specified signal to all processes inside the container"),)


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if 0 < num < _signal.NSIG:
            return num
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(_signal, name, None) if name.isupper() and not name.startswith("SIG_") else None
        if sig is not None:
            return int(sig)
    raise UsageError(f"unknown signal {text!r}")


def main(g, o, args) -> int:
    container_id = need_id(args, "kill")
    sig = parse_signal(args[1]) if len(args) > 1 else _signal.SIGTERM
    c = Container.open(g.root, container_id)
    try:
        c.kill(sig, all_processes=o["all"])
        if sig == _signal.SIGKILL and c.state.cgroup:
            after_sigkill(c, o["all"])
    finally:
        c.close()
    return 0


def after_sigkill(c, all_processes: bool) -> None:
    """SIGKILL must take effect: a paused (frozen) container is thawed, or on cgroup v1 the
    processes could not die (runc thaws too); with --all, return once the cgroup is empty, so
    that the `delete` engines send next finds nothing left (runc waits for them as well)."""
    from ..errors import OcirtError
    from ..members import owns_cgroup
    try:
        cg = c.cgroup()
        if cg.frozen():
            cg.thaw()
        if all_processes and owns_cgroup(cg):
            cg.wait_empty()
    except (OSError, OcirtError):
        pass
