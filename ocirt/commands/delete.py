from ..cli import Opt, need_id
from ..container import OpenContainer, remove_leftover
from ..errors import OcirtError
from ..state import check_id

USAGE = "delete [command options] <container-id>"
OPTIONS = (Opt("force", "f", help="forcibly deletes the container if it is still running (uses SIGKILL)"),)


def main(g, o, args) -> int:
    container_id = need_id(args, "delete")
    check_id(container_id)  # (--force forgives a container that is not there, not a bad id)
    try:
        c = OpenContainer.open(g.root, container_id, warn=g.log.warning)
    except OcirtError:
        if o["force"]:  # engines always issue a second `delete --force`: a missing id is fine
            remove_leftover(g.root, container_id)
            return 0
        raise
    with c:
        try:
            c.delete(force=o["force"])
            return 0
        except (OcirtError, OSError) as e:  # (an OSError no step foresaw: --force goes on too)
            if not o["force"]:
                raise
            failed = e
    # never impossible to remove: what its state still tells of goes
    g.log.warning(f"delete --force {container_id}: {failed}; removing what can be found")
    remove_leftover(g.root, container_id)
    return 0
