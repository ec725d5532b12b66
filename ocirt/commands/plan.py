"""`ocirt plan`: list every kernel operation `create` would make for a bundle, doing none of them.

No root needed: the steps run against a RecordingKernel (see ocirt/plan.py).
"""
import sys

from .. import jsonio
from ..cli import Opt, UsageError

USAGE = "plan [command options] [container-id]"
OPTIONS = (
    Opt("bundle", "b", value=True, default=".", help="path to the root of the bundle directory"),
    Opt("format", "f", value=True, default="text", help="output format: 'text' or 'json'"),
    Opt("console-socket", value=True, default="",
        help="as for create (process.terminal needs one; it is not connected to)"),
    Opt("no-pivot", help="plan without pivot_root, as create --no-pivot"),
    Opt("no-new-keyring", help="plan without a new session keyring, as create --no-new-keyring"),
    Opt("preserve-fds", value=True, default="0", help="as for create"),
)
DEFAULT_ID = "plan"


def main(g, o, args) -> int:
    from .. import plan as plan_mod
    from ..cli import int_option
    from ..checks import CreateOptions

    if o["format"] not in ("text", "json"):
        raise UsageError(f"invalid format {o['format']!r}: 'text' or 'json'")
    if len(args) > 1:
        raise UsageError('plan: "plan" takes at most 1 argument (the container id)')
    opts = CreateOptions(id=args[0] if args else DEFAULT_ID, bundle=o["bundle"], root=g.root,
                         console_socket=o["console_socket"] or None, no_pivot=o["no_pivot"],
                         no_new_keyring=o["no_new_keyring"],
                         preserve_fds=int_option(o, "preserve_fds"),
                         systemd_cgroup=g.systemd_cgroup, warn=g.log.warning)
    p = plan_mod.build(opts)
    if o["format"] == "json":
        sys.stdout.write(jsonio.dumps(plan_mod.render_json(p), indent="  ") + "\n")
        for note in p.notes:
            g.log.warning(note)
    else:
        sys.stdout.write(plan_mod.render_text(p))
    return 0
