"""Linux security modules: process.apparmorProfile, process.selinuxLabel, linux.mountLabel.

Detected from the host, never assumed. A config that asks for a module the host lacks fails
create with a clear error (a container silently left unconfined is worse than no container).
"""

from __future__ import annotations

from . import kernel as k
from . import paths
from .errors import ConfigError


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return paths.is_file("/sys/fs/selinux/enforce")


def check(config: dict) -> None:
    """In the parent, before anything is made."""
    check_process(config.get("process") or {})
    if (config.get("linux") or {}).get("mountLabel") and not selinux_enabled():
        raise ConfigError(
            "/linux/mountLabel",
            "selinux mount label is specified in config, but selinux is disabled or not supported",
        )


def check_process(proc: dict, where: str = "/process", document: str = "config.json") -> None:
    """The labels of one process (the init's, or exec's process.json with where="")."""
    if proc.get("apparmorProfile") and not apparmor_enabled():
        raise ConfigError(
            f"{where}/apparmorProfile",
            "apparmor profile specified but apparmor is not enabled on this system",
            document,
        )
    if proc.get("selinuxLabel") and not selinux_enabled():
        raise ConfigError(
            f"{where}/selinuxLabel",
            "selinux label is specified in config, but selinux is disabled or not supported",
            document,
        )


def apply_on_exec(kernel: k.Kernel, apparmor_profile: str | None, selinux_label: str | None) -> None:
    """In the process, just before execve: the labels take effect at exec."""
    if apparmor_profile:
        path = "/proc/self/attr/apparmor/exec"
        if not paths.exists(path):
            path = "/proc/self/attr/exec"
        kernel.write_file(path, f"exec {apparmor_profile}")
    if selinux_label:
        kernel.write_file("/proc/self/attr/exec", selinux_label)


def mount_data(data: str | None, mount_label: str, fstype: str | None) -> str | None:
    """The SELinux context option for filesystems that take one (not proc, sysfs, cgroup...)."""
    if not mount_label or fstype in (None, "proc", "sysfs", "cgroup", "cgroup2", "mqueue", "bind"):
        return data
    context = f'context="{mount_label}"'
    return f"{data},{context}" if data else context
