"""`restore <id>`: runc's command line, answered with a clear error (see checkpoint.py)."""

from ..cli import Opt, exact_id
from ..errors import OcirtError
from .checkpoint import CRIU_OPTIONS, UNSUPPORTED

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
    exact_id(args, "restore")
    raise OcirtError(UNSUPPORTED)
