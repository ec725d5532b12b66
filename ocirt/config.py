"""Loading a bundle's config.json."""
from __future__ import annotations

import json
import os

from .errors import ConfigError, OcirtError


def load(bundle: str) -> dict:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise OcirtError(f"JSON specification file {path} not found") from None
    except OSError as e:
        raise OcirtError(f"open {path}", e.errno) from None
    try:
        config = json.loads(data)
    except ValueError as e:
        raise OcirtError(f"config.json: invalid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError("/", "must be an object")
    check_version(config)
    from .validate import validate
    validate(config)
    return config


def check_version(config: dict) -> None:
    version = config.get("ociVersion")
    if not isinstance(version, str):
        raise ConfigError("/ociVersion", "is required and must be a string")
    if version.split(".")[0] != "1":
        raise ConfigError("/ociVersion", f"unsupported major version in {version!r} (supported: 1.x)")


def rootfs_path(bundle: str, config: dict) -> str:
    path = config["root"]["path"]
    return os.path.realpath(os.path.join(bundle, path))
