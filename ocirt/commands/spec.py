"""`ocirt spec`: write a starter config.json into the bundle directory, as `runc spec` does."""

import json
import os

from ..cli import Opt, UsageError
from ..errors import OcirtError
from ..spec_template import default_spec
from ..state import write_all

USAGE = "spec [command options]"
OPTIONS = (
    Opt("bundle", "b", value=True, default="", help="path to the root of the bundle directory"),
    Opt("rootless", help="generate a configuration for a rootless container"),
)
CONFIG = "config.json"
EXISTS = f"File {CONFIG} exists. Remove it first"  # runc's words, no errno suffix


def main(g, o, args) -> int:
    if args:
        raise UsageError('ocirt: "spec" requires exactly 0 argument(s)')
    bundle = o["bundle"] or "."
    if o["bundle"]:
        try:  # runc chdirs into the bundle; report a bad one the same way
            os.close(os.open(bundle, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as e:
            raise OcirtError(f"chdir {bundle}", errno=e.errno) from None
    path = os.path.join(bundle, CONFIG)
    if os.path.lexists(path):
        raise OcirtError(EXISTS)
    data = (json.dumps(default_spec(rootless=o["rootless"]), indent="\t") + "\n").encode()
    try:  # O_EXCL: never write through a symlink or over a file that appeared meanwhile
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise OcirtError(EXISTS) from None
    except OSError as e:
        raise OcirtError(f"open {CONFIG}", errno=e.errno) from None
    try:
        write_all(fd, data)
    except OSError as e:
        os.unlink(path)  # no half-written config.json left behind to block the next try
        raise OcirtError(f"write {CONFIG}", errno=e.errno) from None
    finally:
        os.close(fd)
    return 0
