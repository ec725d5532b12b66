"""`checkpoint <id>`: runc's command line; CRIU dumps the container (ocirt/checkpoint.py)."""

from ..cli import Opt, UsageError, exact_id

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


def criu_options(g, o, **extra):
    """The options both commands share, as ocirt.checkpoint.CriuOptions."""
    from ..checkpoint import CriuOptions

    return CriuOptions(
        image_path=o["image_path"] or "",
        work_path=o["work_path"] or "",
        criu_path=g.criu or "criu",
        tcp_established=o["tcp_established"],
        ext_unix_sk=o["ext_unix_sk"],
        shell_job=o["shell_job"],
        file_locks=o["file_locks"],
        lazy_pages=o["lazy_pages"],
        manage_cgroups_mode=o["manage_cgroups_mode"] or "",
        empty_ns=list(o["empty_ns"]),
        auto_dedup=o["auto_dedup"],
        **extra,
    )


def main(g, o, args) -> int:
    from ..checkpoint import checkpoint
    from ..container import OpenContainer

    container_id = exact_id(args, "checkpoint")
    try:
        status_fd = int(o["status_fd"] or -1)
    except ValueError:
        raise UsageError(f"invalid value {o['status_fd']!r} for flag -status-fd") from None
    opts = criu_options(
        g,
        o,
        parent_path=o["parent_path"] or "",
        leave_running=o["leave_running"],
        pre_dump=o["pre_dump"],
        page_server=o["page_server"] or "",
        status_fd=status_fd,
    )
    with OpenContainer.open(g.root, container_id, warn=g.log.warning) as c:
        checkpoint(c, opts)
    return 0
