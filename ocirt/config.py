"""Loading a bundle's config.json."""

from __future__ import annotations

from . import jsonio, paths
from .errors import ConfigError, OcirtError


def load(bundle: str) -> dict:
    path = paths.join(bundle, "config.json")
    try:
        config = jsonio.load_path(path)
    except FileNotFoundError:
        raise OcirtError(f"JSON specification file {path} not found") from None
    except OSError as e:
        raise OcirtError(f"open {path}", e.errno) from None
    except ValueError as e:
        raise OcirtError(f"{path}: invalid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError("/", "must be an object")
    from .validate import validate

    validate(config)
    return config


def rootfs_path(bundle: str, config: dict) -> str:
    path = config["root"]["path"]
    if "\x00" in path:  # (validate refuses it first; `ocirt check` may not have)
        raise ConfigError("/root/path", "string contains a NUL byte")
    return paths.realpath(paths.join(bundle, path))
