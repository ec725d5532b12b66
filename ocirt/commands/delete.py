from ..cli import Opt, need_id
from ..container import Container
from ..errors import OcirtError

USAGE = "delete [command options] <container-id>"
OPTIONS = (Opt("force", "f", help="forcibly deletes the container if it is still running (uses SIGKILL)"),)


def main(g, o, args) -> int:
    container_id = need_id(args, "delete")
    try:
        c = Container.open(g.root, container_id)
    except OcirtError:
        if o["force"]:  # engines always issue a second `delete --force`: a missing id is fine
            remove_leftover(g.root, container_id)
            return 0
        raise
    try:
        c.delete(force=o["force"])
    except OcirtError as e:
        if not o["force"]:
            raise
        c.close()   # never impossible to remove: what its state still tells of goes
        g.log.warning(f"delete --force {container_id}: {e}; removing what can be found")
        remove_leftover(g.root, container_id)
    finally:
        c.close()
    return 0


def remove_leftover(root: str, container_id: str) -> None:
    """A state dir without a usable state.json (a create that was killed, a damaged file):
    remove what it still tells of, and the directory."""
    from ..members import remove_damaged
    remove_damaged(root, container_id)
