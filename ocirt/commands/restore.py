"""`restore <id>`: runc's command line, answered with a clear error (see checkpoint.py)."""
from ..cli import Opt
from ..errors import OcirtError
from .checkpoint import UNSUPPORTED
from .pause import exact_id

USAGE = "restore [command options] <container-id>"
OPTIONS = (
    Opt("console-socket", value=True, help="path to an AF_UNIX socket which will receive the pty master"),
    Opt("image-path", value=True, help="path to criu image files for restoring"),
    Opt("work-path", value=True, help="path for saving work files and logs"),
    Opt("tcp-established", help="allow open tcp connections"),
    Opt("ext-unix-sk", help="allow external unix sockets"),
    Opt("shell-job", help="allow shell jobs"),
    Opt("file-locks", help="handle file locks, for safety"),
    Opt("manage-cgroups-mode", value=True, help="cgroups mode: 'soft' (default), 'full' and 'strict'"),
    Opt("bundle", "b", value=True, default=".", help="path to the root of the bundle directory"),
    Opt("detach", "d", help="detach from the container's process"),
    Opt("pid-file", value=True, help="specify the file to write the process id to"),
    Opt("no-subreaper", help="disable the use of the subreaper used to reap reparented processes"),
    Opt("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Opt("empty-ns", value=True, multi=True, help="create a namespace, but don't restore its properties"),
    Opt("auto-dedup", help="enable auto deduplication of memory images"),
    Opt("lazy-pages", help="use userfaultfd to lazily restore memory pages"),
    Opt("lsm-profile", value=True, help="an LSM profile for the restore, TYPE:NAME"),
    Opt("lsm-mount-context", value=True, help="an LSM mount context for the restore"),
)


def main(g, o, args) -> int:
    exact_id(args, "restore")
    raise OcirtError(UNSUPPORTED)
