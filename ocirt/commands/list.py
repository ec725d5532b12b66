"""`list [--format table|json] [--quiet]`: the containers under --root, in runc's shapes.

table: runc's columns, laid out as Go's text/tabwriter lays them out for runc (a cell's width is
its longest entry plus 3 spaces, 12 at least; the last column unpadded). json: one compact line,
the fields of runc's list in its order, `annotations` left out when empty, `null` for no
container (a nil Go slice), `created` as Go prints a time (RFC 3339, no trailing zeros in the
fraction). --quiet: the ids, one a line, whatever --format says.
"""

import os

from ..cli import Opt
from ..container import Container
from ..errors import OcirtError
from ..jsonio import go_dumps, go_time
from ..state import OCI_VERSION, DamagedState, list_ids
from .state import write_stdout

USAGE = "list [command options]"
OPTIONS = (
    Opt("format", "f", value=True, default="table", help="select one of: table or json"),
    Opt("quiet", "q", help="display only container IDs"),
)


# Go's tabwriter.NewWriter(stdout, minwidth 12, tabwidth 1, padding 3, ' ', 0), as runc makes it
MIN_WIDTH = 12
PADDING = 3
HEADER = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")


def table(rows: list) -> str:
    """Rows of cells laid out by Go's tabwriter as runc configures it: every cell but the last
    of a line is padded to its column's width."""
    widths = [MIN_WIDTH] * (len(HEADER) - 1)
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + PADDING)
    return "".join(
        "".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + row[-1] + "\n" for row in rows
    )


def main(g, o, args) -> int:
    rows: list[dict] = []
    try:
        ids = list_ids(g.root)
    except OSError as e:  # --root is a file, or not readable: one line, Go's way (runc: mkdir ROOT)
        raise OcirtError(f"open {g.root}", errno=e.errno) from None
    for cid in ids:
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
        row = {
            "ociVersion": OCI_VERSION,  # as state says it
            "id": cid,
            "pid": st.pid if status.value != "stopped" else 0,
            "status": status.value,
            "bundle": st.bundle,
            "rootfs": st.rootfs,
            "created": go_time(st.created),
        }
        if st.annotations:  # omitempty
            row["annotations"] = dict(sorted(st.annotations.items()))  # a Go map: sorted
        row["owner"] = st.owner or _owner(g.root, cid)
        rows.append(row)
    if o["quiet"]:
        write_stdout("".join(r["id"] + "\n" for r in rows))
    elif o["format"] == "json":
        write_stdout(go_dumps(rows or None) + "\n")
    elif o["format"] == "table":
        cells = [HEADER] + [
            (r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]) for r in rows
        ]
        write_stdout(table(cells))
    else:
        raise OcirtError("invalid format option")  # runc's words: the value is not repeated
    return 0


def _owner(root: str, cid: str) -> str:
    """The user owning the container's state directory, by name; `#UID` when it has none."""
    import pwd

    try:
        uid = os.stat(os.path.join(root, cid)).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"
