from __future__ import annotations

from ..cli import PRESERVE_FDS, Opt, fd_count, need_id, rootless_mode
from ..signals import no_inherited_signal_state  # (run calls it through this module)

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
        **extra,
    )


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
    window = g.attach_window()
    from ..create import HostEffects, create

    try:
        sd, state = create(options_from(g, o, container_id), g.kernel(), HostEffects(window))
    except OcirtError as e:
        e.message = f"ocirt create failed: {e.message}"
        raise
    g.log.debug(f"create: container {container_id} created, init pid {state.pid}")
    sd.unlock()
    return 0
