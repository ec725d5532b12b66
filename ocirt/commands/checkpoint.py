"""`checkpoint <id>`: runc's command line, answered with a clear error.

ocirt has no CRIU integration yet. The command takes runc's flags, checks that the container
exists (the error a user of runc would get first otherwise), then says so in one line, so an
engine asking for a checkpoint (podman container checkpoint) reports a plain reason.
"""

from ..cli import Opt, exact_id
from ..container import OpenContainer
from ..errors import OcirtError

USAGE = "checkpoint [command options] <container-id>"
# the CRIU flags runc's checkpoint and restore both take (restore.py reuses them)
CRIU_OPTIONS = (
    Opt("work-path", value=True, help="path for saving work files and logs"),
    Opt("tcp-established", help="allow open tcp connections"),
    Opt("ext-unix-sk", help="allow external unix sockets"),
    Opt("shell-job", help="allow shell jobs"),
    Opt("lazy-pages", help="use userfaultfd to lazily restore memory pages"),
    Opt("file-locks", help="handle file locks, for safety"),
    Opt("manage-cgroups-mode", value=True, help="cgroups mode: 'soft' (default), 'full' and 'strict'"),
    Opt("empty-ns", value=True, multi=True, help="create a namespace, but don't restore its properties"),
    Opt("auto-dedup", help="enable auto deduplication of memory images"),
)
OPTIONS = (
    Opt("image-path", value=True, help="path for saving criu image files"),
    Opt("parent-path", value=True, help="path for previous criu image files in pre-dump"),
    Opt("leave-running", help="leave the process running after checkpointing"),
    Opt("status-fd", value=True, default="-1", help="criu writes \\0 to this FD once lazy-pages is ready"),
    Opt("page-server", value=True, help="ADDRESS:PORT of the page server"),
    Opt("pre-dump", help="dump container's memory information only, leave the container running after this"),
) + CRIU_OPTIONS

UNSUPPORTED = (
    "checkpoint/restore is not supported by ocirt yet (it has no CRIU integration); "
    "use runc for containers that need it"
)


def main(g, o, args) -> int:
    OpenContainer.open(g.root, exact_id(args, "checkpoint"), lock=False)  # "does not exist" first
    raise OcirtError(UNSUPPORTED)
