from __future__ import annotations

import posix  # not os: see ocirt/paths.py

from ..cli import PRESERVE_FDS, Opt, fd_count, need_id, rootless_mode
from ..signals import no_inherited_signal_state, stop_like_interrupt  # (run: through this module)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..checks import CreateOptions

USAGE = "create [command options] <container-id>"
OPTIONS = (
    Opt("bundle", "b", value=True, default=".", help="path to the root of the bundle directory"),
    Opt("console-socket", value=True, help="path to an AF_UNIX socket which will receive the pty master"),
    Opt("pid-file", value=True, help="specify the file to write the process id to"),
    Opt("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Opt("no-new-keyring", help="do not create a new session keyring for the container"),
    PRESERVE_FDS,
)


def options_from(g, o, container_id: str, **extra) -> CreateOptions:
    from ..checks import CreateOptions

    return CreateOptions(
        id=container_id,
        bundle=o["bundle"],
        root=g.root,
        pid_file=o["pid_file"],
        console_socket=o["console_socket"],
        no_pivot=o["no_pivot"],
        no_new_keyring=o["no_new_keyring"],
        preserve_fds=o["preserve_fds"],
        systemd_cgroup=g.systemd_cgroup,
        rootless=rootless_mode(g.rootless),
        warn=g.log.warning,
        debug=g.log.debugger,
        init_as_child=True,  # (the command ends once the container is made, or waits for it)
        **systemd_options(),
        **extra,
    )


def systemd_options() -> dict:
    """LISTEN_FDS / NOTIFY_SOCKET, when set: what they add to the container (ocirt/sdnotify.py)."""
    if b"LISTEN_FDS" not in posix.environ and not posix.environ.get(b"NOTIFY_SOCKET"):
        return {}
    from ..sdnotify import create_options

    return create_options()


def host_effects(window, opts: CreateOptions):
    """create's effects on the host; with NOTIFY_SOCKET, the state dir it makes holds the notify
    dir the container's mount binds."""
    from ..create import HostEffects

    fx = HostEffects(window)
    if opts.notify_socket:
        from ..sdnotify import NotifyStateDir

        fx.state_dir = NotifyStateDir  # type: ignore[method-assign]  # (same arguments: root, id)
    return fx


def wants_terminal(bundle: str) -> bool | None:
    """config.json's process.terminal; None when it cannot be read (create then says why)."""
    from .. import jsonio, paths

    try:
        return bool(
            (jsonio.load_path(paths.join(bundle, "config.json")).get("process") or {}).get("terminal")
        )
    except (OSError, ValueError, AttributeError):
        return None


def main(g, o, args) -> int:
    from ..errors import OcirtError

    container_id = need_id(args, "create")
    fd_count(o)
    no_inherited_signal_state()  # (a closed fd 0-2: the launcher made it /dev/null)
    stop_like_interrupt()
    window = g.attach_window()
    from ..create import create

    opts = options_from(g, o, container_id)
    try:
        sd, state = create(opts, g.kernel(), host_effects(window, opts))
    except OcirtError as e:
        e.message = f"ocirt create failed: {e.message}"
        raise
    g.log.debug(f"create: container {container_id} created, init pid {state.pid}")
    sd.unlock()
    return 0
