"""`ocirt plan`: list every kernel operation `create` would make for a bundle, doing none of them,
each with the config.json field(s) it comes from.

No root needed: the steps run against a RecordingKernel (see ocirt/plan.py); the causes are read
from the config (ocirt/explain.py).
"""

import os
import sys

from .. import jsonio
from ..cli import Opt, UsageError

USAGE = "plan [command options] [container-id]"
OPTIONS = (
    Opt("bundle", "b", value=True, default=".", help="path to the root of the bundle directory"),
    Opt("format", "f", value=True, default="text", help="output format: 'text' or 'json'"),
    Opt(
        "field",
        value=True,
        default="",
        help="only the operations that come from this config field (a JSON pointer, e.g. "
        "/mounts/3 or /linux/resources; 'runtime': the runtime's own)",
    ),
    Opt(
        "diff",
        value=True,
        default="",
        help="compare with the plan of another bundle: the operations that differ",
    ),
    Opt(
        "console-socket",
        value=True,
        default="",
        help="as for create (process.terminal needs one; it is not connected to)",
    ),
    Opt("no-pivot", help="plan without pivot_root, as create --no-pivot"),
    Opt("no-new-keyring", help="plan without a new session keyring, as create --no-new-keyring"),
    Opt("preserve-fds", value=True, default=0, number=True, help="as for create"),
)
DEFAULT_ID = "plan"


def main(g, o, args) -> int:
    from .. import plan as plan_mod
    from ..checks import CreateOptions
    from ..cli import fd_count
    from ..explain import Explained
    from .create import systemd_options

    if o["format"] not in ("text", "json"):
        raise UsageError(f"invalid format {o['format']!r}: 'text' or 'json'")
    if len(args) > 1:
        raise UsageError('plan: "plan" takes at most 1 argument (the container id)')
    field = o["field"]
    if field and not (field == "runtime" or field.startswith("/")):
        raise UsageError(f"invalid --field {field!r}: a JSON pointer (/mounts/0) or 'runtime'")

    def explained(bundle: str) -> Explained:
        opts = CreateOptions(
            id=args[0] if args else DEFAULT_ID,
            bundle=bundle,
            root=g.root,
            console_socket=o["console_socket"] or None,
            no_pivot=o["no_pivot"],
            no_new_keyring=o["no_new_keyring"],
            preserve_fds=fd_count(o),
            systemd_cgroup=g.systemd_cgroup,
            warn=g.log.warning,
            init_as_child=True,  # what `ocirt create` does
            **systemd_options(),  # LISTEN_FDS, NOTIFY_SOCKET: as create reads them
        )
        e = Explained(plan_mod.build(opts), bundle, os.path.join(opts.root, opts.id))
        if field:
            e.plan, e.causes = plan_mod.select(e.plan, e.causes, field)
        return e

    a = explained(o["bundle"])
    if o["diff"]:
        b = explained(o["diff"])
        hunks = plan_mod.diff(a.plan, a.causes, a.placeholders(), b.plan, b.causes, b.placeholders())
        if o["format"] == "json":
            sys.stdout.write(jsonio.dumps(plan_mod.render_diff_json(hunks), indent="  ") + "\n")
        else:
            sys.stdout.write(plan_mod.render_diff_text(hunks, o["bundle"], o["diff"], a.describe, b.describe))
        return 0
    p = a.plan
    if o["format"] == "json":
        sys.stdout.write(jsonio.dumps(plan_mod.render_json(p, a.causes), indent="  ") + "\n")
        for note in p.notes:
            g.log.warning(note)
    else:
        if field and not p.steps:
            sys.stdout.write(f"# no operation comes from {field}\n")
        else:
            sys.stdout.write(plan_mod.render_text(p, a.causes, a.describe))
    return 0
