"""`restore <id>`: runc's command line; CRIU restores the container (ocirt/checkpoint.py).

--no-pivot and --no-subreaper are taken as runc takes them: CRIU makes the mount namespace (and
its root) itself, and a detached restore needs no subreaper.
"""

from ..cli import Opt, exact_id
from .checkpoint import CRIU_OPTIONS, criu_options

USAGE = "restore [command options] <container-id>"
OPTIONS = (
    Opt("console-socket", value=True, help="path to an AF_UNIX socket which will receive the pty master"),
    Opt("image-path", value=True, help="path to criu image files for restoring"),
    Opt("bundle", "b", value=True, default=".", help="path to the root of the bundle directory"),
    Opt("detach", "d", help="detach from the container's process"),
    Opt("pid-file", value=True, help="specify the file to write the process id to"),
    Opt("no-subreaper", help="disable the use of the subreaper used to reap reparented processes"),
    Opt("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Opt("lsm-profile", value=True, help="an LSM profile for the restore, TYPE:NAME"),
    Opt("lsm-mount-context", value=True, help="an LSM mount context for the restore"),
) + CRIU_OPTIONS


def main(g, o, args) -> int:
    from ..checkpoint import restore

    container_id = exact_id(args, "restore")
    opts = criu_options(
        g,
        o,
        bundle=o["bundle"] or ".",
        detach=o["detach"],
        pid_file=o["pid_file"] or "",
        console_socket=o["console_socket"] or "",
        no_pivot=o["no_pivot"],
        no_subreaper=o["no_subreaper"],
        lsm_profile=o["lsm_profile"] or "",
        lsm_mount_context=o["lsm_mount_context"] or "",
        systemd_cgroup=g.systemd_cgroup,
    )
    return restore(g.root, container_id, opts, g.kernel(), warn=g.log.warning)
