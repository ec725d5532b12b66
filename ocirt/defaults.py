"""The defaults of the global options: where state lives (--root) and --rootless auto."""

import posix  # not os: see bin/ocirt ("posix")

from .errors import OcirtError
from .paths import environ_get  # os's environ where a program using ocirt's API loaded os


def default_root() -> str:
    """runc's rule: /run/<name> for root; for anyone else $XDG_RUNTIME_DIR/<name> when set."""
    xdg = environ_get("XDG_RUNTIME_DIR")
    if posix.geteuid() != 0 and xdg:
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
