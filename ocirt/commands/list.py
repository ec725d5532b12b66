import os
import sys

from .. import jsonio
from ..cli import Opt
from ..container import Container
from ..errors import OcirtError
from ..state import DamagedState, list_ids

USAGE = "list [command options]"
OPTIONS = (
    Opt("format", "f", value=True, default="table", help="select one of: table or json"),
    Opt("quiet", "q", help="display only container IDs"),
)


def main(g, o, args) -> int:
    rows: list[dict] = []
    for cid in list_ids(g.root):
        try:
            c = Container.open(g.root, cid, lock=False)
        except DamagedState as e:  # the others are listed all the same
            g.log.warning(str(e))
            continue
        except OcirtError:  # gone meanwhile, or a create that has not saved yet
            continue
        st = c.state
        try:
            status = c.status()
        except OcirtError as e:
            g.log.warning(f"container {cid}: {e}")
            continue
        rows.append(
            {
                "ociVersion": "1.3.0",
                "id": cid,
                "pid": st.pid if status.value != "stopped" else 0,
                "status": status.value,
                "bundle": st.bundle,
                "rootfs": st.rootfs,
                "created": st.created,
                "annotations": st.annotations or None,
                "owner": st.owner or _owner(g.root, cid),
            }
        )
    if o["quiet"]:
        for r in rows:
            sys.stdout.write(r["id"] + "\n")
    elif o["format"] == "json":
        sys.stdout.write(jsonio.dumps(rows) + "\n")
    elif o["format"] == "table":
        fmt = "{:<12} {:<10} {:<10} {:<40} {:<31} {}\n"
        sys.stdout.write(fmt.format("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"))
        for r in rows:
            sys.stdout.write(
                fmt.format(r["id"], r["pid"], r["status"], r["bundle"], r["created"], r["owner"])
            )
    else:
        raise OcirtError(f"invalid format option: {o['format']}")
    return 0


def _owner(root: str, cid: str) -> str:
    import pwd

    try:
        uid = os.stat(os.path.join(root, cid)).st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return ""
