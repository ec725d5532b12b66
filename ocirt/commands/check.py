"""`ocirt check`: every problem of a bundle's config.json, then what this host lacks for it.

Exit 0 when `create` would pass (warnings allowed), 1 otherwise. Nothing is created.
"""

import sys

from .. import jsonio
from ..cli import Opt, UsageError

USAGE = "check [command options]"
OPTIONS = (
    Opt("bundle", "b", value=True, default=".", help="path to the root of the bundle directory"),
    Opt("format", "f", value=True, default="text", help="output format: 'text' or 'json'"),
)


def _out(text: str) -> None:
    """The report on stdout, whatever the names in it hold (a lone surrogate: its escape)."""
    sys.stdout.write(text.encode(errors="backslashreplace").decode())


def main(g, o, args) -> int:
    from ..diagnose import check_bundle

    if o["format"] not in ("text", "json"):
        raise UsageError(f"invalid format {o['format']!r}: 'text' or 'json'")
    if args:
        raise UsageError('check: "check" takes no arguments')
    report = check_bundle(o["bundle"])
    if o["format"] == "json":
        doc = {"ok": report.ok, "problems": [p.as_dict() for p in report.problems]}
        _out(jsonio.dumps(doc, indent="  ") + "\n")
    else:
        for p in report.problems:
            _out(p.text() + "\n")
        errors = sum(p.level == "error" for p in report.problems)
        warnings = len(report.problems) - errors
        _out(f"{errors} error(s), {warnings} warning(s): create would {'pass' if report.ok else 'fail'}\n")
    return 0 if report.ok else 1
