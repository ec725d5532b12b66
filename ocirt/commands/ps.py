"""`ps [--format table|json] <id> [ps options]`: the container's processes, as runc shows them.

json: the pids of the container's cgroup (host pids), `null` when there are none (Go's nil
slice). table: the host's `ps` (default `ps -ef`, or the options after the id) filtered to the
rows whose PID column is one of those pids. Everything after the id goes to ps, unparsed.
"""

import json
import subprocess

from ..cli import Opt, need_id
from ..container import OpenContainer
from ..errors import OcirtError
from .state import write_stdout

USAGE = "ps [command options] <container-id> [ps options]"
OPTIONS = (Opt("format", "f", value=True, default="table", help="select one of: table or json"),)
STOP_AT_ARGS = True


def filter_table(output: str, pids) -> list:
    """runc's filtering of ps output: the header, then the rows whose PID is in pids."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise OcirtError("couldn't find PID field in ps output")
    index = titles.index("PID")
    wanted = set(pids)
    out = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if index >= len(fields):
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise OcirtError(
                f'unable to parse pid: strconv.Atoi: parsing "{fields[index]}": invalid syntax'
            ) from None
        if pid in wanted:
            out.append(line)
    return out


def main(g, o, args) -> int:
    container_id = need_id(args, "ps")
    pids = OpenContainer.open(g.root, container_id, lock=False).pids()
    fmt = o["format"]
    if fmt == "json":
        write_stdout(json.dumps(pids or None, separators=(",", ":")) + "\n")
        return 0
    if fmt != "table":
        raise OcirtError("invalid format option")
    ps_args = args[1:] or ["-ef"]
    try:
        proc = subprocess.run(
            ["ps", *ps_args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except FileNotFoundError:
        raise OcirtError('exec: "ps": executable file not found in $PATH') from None
    except OSError as e:  # too few fds for its pipes (RLIMIT_NOFILE), no memory to fork: named
        raise OcirtError('exec: "ps"', e.errno) from None
    output = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        code = proc.returncode
        what = f"exit status {code}" if code > 0 else f"signal: {-code}"
        raise OcirtError(f"{what}: {output}")
    write_stdout("".join(line + "\n" for line in filter_table(output, pids)))
    return 0
