"""The defaults of the global options: where state lives (--root) and --rootless auto."""

import posix  # not os: see bin/ocirt ("posix")
import sys

from .errors import OcirtError


def default_root() -> str:
    """runc's rule: /run/<name> for root; for anyone else $XDG_RUNTIME_DIR/<name> when set."""
    os = sys.modules.get("os")  # loaded (an API user's program): its environ may have changed since
    if os is not None:
        xdg, euid = os.environ.get("XDG_RUNTIME_DIR", ""), os.geteuid()
    else:
        xdg, euid = (
            posix.environ.get(b"XDG_RUNTIME_DIR", b"").decode("utf-8", "surrogateescape"),
            posix.geteuid(),
        )
    if euid != 0 and xdg:
        return xdg + "ocirt" if xdg.endswith("/") else xdg + "/ocirt"
    return "/run/ocirt"


def rootless_mode(value: str) -> bool:
    """--rootless true|false|auto. auto (runc's): rootless when not root, or when root only inside
    a user namespace (the uid map is not the whole range)."""
    if value in ("true", "false"):
        return value == "true"
    if value != "auto":
        raise OcirtError(f'invalid value "{value}" for flag --rootless: expected true, false or auto')
    from .namespaces import in_user_namespace

    return posix.geteuid() != 0 or in_user_namespace()
