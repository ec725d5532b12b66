"""config.json -> what the children of `create` do (`stages.InitSpec`): pure, no side effect, shared
with `ocirt plan`. Also what the parent derives from the config for the cgroup: the device rules
always allowed, and the cgroup directories the init binds where it cannot mount cgroupfs."""

from __future__ import annotations

import posix  # not os: see ocirt/paths.py

from . import namespaces, paths
from .rootfs_spec import RootfsSpec
from .stages import InitSpec


def init_spec(config: dict, bundle: str, opts, checked, layout, cg, fifo_fd: int) -> InitSpec:
    """What the children do (`opts`: checks.CreateOptions, `checked`: checks.Checked). The
    console fd is not in it: `create` connects to --console-socket itself."""
    linux, ns = checked.linux, checked.ns
    rspec = RootfsSpec(
        rootfs=checked.rootfs,
        mounts=with_bundle_sources(bundle, config.get("mounts") or []) + notify_mounts(opts),
        readonly=bool(config["root"].get("readonly")),
        propagation=linux.get("rootfsPropagation") or "",
        masked=linux.get("maskedPaths") or [],
        readonly_paths=linux.get("readonlyPaths") or [],
        devices=linux.get("devices") or [],
        in_userns=ns.has("user"),
        no_pivot=opts.no_pivot,
        cgroup_binds=cgroup_binds(layout, cg) if cg is not None else [],  # else in_cgroup's word
        cgroup2=layout.kind == "v2",
        mount_label=linux.get("mountLabel") or "",
    )
    cfg_hooks = config.get("hooks") or {}
    return InitSpec(
        ns=ns,
        rootfs=rspec,
        proc=checked.proc,
        fifo_fd=fifo_fd,
        hostname=config.get("hostname") if ns.has("uts") else None,
        domainname=config.get("domainname") if ns.has("uts") and "domainname" in config else None,
        sysctl=linux.get("sysctl") or {},
        time_offsets=namespaces.time_offsets(linux.get("timeOffsets") or {}),
        hooks=cfg_hooks,
        runtime_hooks=any(
            cfg_hooks.get(n) for n in ("prestart", "createRuntime", "createContainer", "startContainer")
        ),
        last_cap=checked.last_cap,
        seccomp=checked.seccomp,
        keyring=None if opts.no_new_keyring else f"_ses.{opts.id}",
        personality=checked.personality,
        mempolicy=checked.mempolicy,
        unprivileged=posix.geteuid() != 0,
    )


def notify_mounts(opts) -> list[dict]:
    """With NOTIFY_SOCKET, the container's end of it after the config's mounts (as runc adds it)."""
    if not opts.notify_socket:
        return []
    from .sdnotify import mount

    return [mount(opts.root, opts.id)]


# Always allowed, after the config's own rules, as runc does: mknod of anything, the default devices
# of config-linux.md, /dev/pts/*, /dev/ptmx and /dev/net/tun.
DEFAULT_DEVICE_RULES = (
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 136, None, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)


def resources_with_default_devices(linux: dict) -> dict:
    resources = dict(linux.get("resources") or {})
    rules = list(resources.get("devices") or [])  # linux.devices are NOT allowed implicitly
    for kind, major, minor, access in DEFAULT_DEVICE_RULES:
        rule = {"allow": True, "type": kind, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    resources["devices"] = rules
    return resources


def is_bind(m: dict) -> bool:
    """A bind mount, by type or by option (runc takes either)."""
    return m.get("type") == "bind" or any(o in ("bind", "rbind") for o in m.get("options") or [])


def with_bundle_sources(bundle: str, mounts: list[dict]) -> list[dict]:
    """A relative bind source is relative to the bundle (as runc reads it)."""
    out = []
    for m in mounts:
        source = m.get("source")
        if source and is_bind(m) and not source.startswith("/"):
            m = {**m, "source": paths.join(bundle, source)}
        out.append(m)
    return out


def cgroup_binds(layout, cg) -> list[tuple[str, str]]:
    """(host dir of the container's cgroup, name under /sys/fs/cgroup) per v1/hybrid hierarchy
    (on v2: the directory, name ""); without a cgroup of its own (rootless), the one the runtime
    is in."""
    cg = cg.placement()
    if layout.kind == "v2":
        # only if mounting cgroup2 is refused (a user namespace without its own cgroup
        # namespace: EPERM/EBUSY): the container's directory bound instead, as runc does
        return [(cg.unified, "")] if cg.unified else []
    binds, seen = [], set()
    for controller, mountpoint in layout.mounts.items():
        d = cg.paths.get(controller)
        if d and mountpoint not in seen:
            seen.add(mountpoint)
            binds.append((d, paths.basename(mountpoint)))
    if layout.kind == "hybrid" and cg.unified:
        binds.append((cg.unified, paths.basename(layout.unified)))
    return binds
