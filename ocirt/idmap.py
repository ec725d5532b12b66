"""Idmapped bind mounts: the `idmap`/`ridmap` mount options and a mount's uidMappings/gidMappings
(config.md "Mounts"), with the new mount API. Imported only when a mount asks for one.

Where each step happens, and why:

  check_config (parent)   `check`: every idmapped mount's mappings validated (one-line errors with
                          the JSON pointer), or the container's own user namespace chosen for it;
                          nothing is made.
  create (parent, before  `prepare`: one helper user namespace per distinct mapping
  forking stage 1)        (Kernel.new_userns), open_tree(source, OPEN_TREE_CLONE [|AT_RECURSIVE
                          for rbind]) in the runtime's mount namespace (the source is a host path),
                          mount_setattr(tree, MOUNT_ATTR_IDMAP [AT_RECURSIVE for ridmap]) with the
                          user namespace's fd, and the tree made slave (private with a private
                          rootfsPropagation) like the init's other binds. The kernel lets only a
                          process privileged over the filesystem's own user namespace (the host's,
                          for ext4 or a host tmpfs) give a mount an idmapping: the init, in a
                          container user namespace, gets EPERM. The helper namespaces are closed
                          once the trees hold their mappings.
  stage 1 -> init         the detached trees' fds are inherited through fork (seal keeps them).
  init (Rootfs.           move_mount(tree, mount point): the mount point resolved with
  mount_entry, before     openat2(RESOLVE_IN_ROOT) under the rootfs, as every other mount's; then
  pivot_root)             the mount's other options (ro, nosuid, ..., propagation, recursive ones)
                          exactly as for a plain bind.

A mount with uidMappings/gidMappings and neither option gets its mapping too, as `idmap` (the spec
asks for the option so that older runtimes do not ignore the mappings silently: a runtime that
knows them applies them).
"""

from __future__ import annotations

import errno
import os

from . import kernel as k
from .errors import ConfigError, OcirtError
from .namespaces import id_map
from .record import record

MAX_LINES = 340  # user_namespaces(7): the most lines a uid_map/gid_map takes
ID_LIMIT = 1 << 32


@record
class IdmapMount:
    """One idmapped mount, as check_config decided it."""

    index: int  # in config.json's mounts
    recursive_tree: bool  # rbind: the source's submounts come along (open_tree AT_RECURSIVE)
    recursive_map: bool  # ridmap: the mapping goes on the submounts too
    uid_map: str = ""  # uid_map/gid_map lines of the mapping
    gid_map: str = ""
    userns_path: str = ""  # or: the joined user namespace whose mapping is used


def check(config: dict, ns) -> list[IdmapMount]:
    """The idmapped mounts of config.json, validated (ConfigError on the first problem)."""
    from .rootfs import needs_idmap, parse_options

    out = []
    linux = config.get("linux") or {}
    for i, m in enumerate(config.get("mounts") or []):
        if not isinstance(m, dict) or not needs_idmap(m):
            continue
        where = f"/mounts/{i}"
        options = m.get("options") or []
        opts = parse_options(options)
        asked = "/options" if opts.idmap else "/uidMappings" if "uidMappings" in m else "/gidMappings"
        if m.get("type") != "bind" and not opts.is_bind:
            raise ConfigError(
                where + asked,
                'idmapped mounts are only supported for bind mounts (type "bind" or option bind/rbind)',
            )
        has_uid, has_gid = "uidMappings" in m, "gidMappings" in m
        if has_uid != has_gid:
            missing = "gidMappings" if has_uid else "uidMappings"
            raise ConfigError(f"{where}/{missing}", "uidMappings and gidMappings must be given together")
        req = IdmapMount(
            index=i, recursive_tree=bool(opts.flags & k.MS_REC), recursive_map="ridmap" in options
        )
        if has_uid:
            req.uid_map = id_map(check_mappings(m["uidMappings"], f"{where}/uidMappings"))
            req.gid_map = id_map(check_mappings(m["gidMappings"], f"{where}/gidMappings"))
        elif "user" in ns.new:  # the container's user namespace mapping (config.md: MAY)
            req.uid_map = id_map(linux.get("uidMappings") or [])
            req.gid_map = id_map(linux.get("gidMappings") or [])
        elif any(t == "user" for t, _, _ in ns.join):
            req.userns_path = next(path for t, path, _ in ns.join if t == "user")
        else:
            raise ConfigError(
                where + asked,
                "an idmapped mount needs uidMappings and gidMappings, or a user namespace for the container",
            )
        out.append(req)
    return out


def check_mappings(mappings, where: str) -> list[dict]:
    """A mount's uidMappings or gidMappings: LinuxIDMapping entries (config-linux.md), uint32
    ranges, size >= 1, no two overlapping on either side, as the kernel takes them."""
    if not isinstance(mappings, list) or not mappings:
        raise ConfigError(where, "must be a non-empty array of {containerID, hostID, size}")
    if len(mappings) > MAX_LINES:
        raise ConfigError(where, f"at most {MAX_LINES} mappings are supported, got {len(mappings)}")
    seen: list[tuple[int, int, int, int]] = []
    for j, e in enumerate(mappings):
        at = f"{where}/{j}"
        if not isinstance(e, dict):
            raise ConfigError(at, "must be an object {containerID, hostID, size}")
        for key in ("containerID", "hostID", "size"):
            v = e.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < ID_LIMIT:
                raise ConfigError(f"{at}/{key}", f"must be an integer from 0 to {ID_LIMIT - 1}")
        c, h, size = e["containerID"], e["hostID"], e["size"]
        if size < 1:
            raise ConfigError(f"{at}/size", "must be at least 1")
        for key, start in (("containerID", c), ("hostID", h)):
            if start + size > ID_LIMIT:
                raise ConfigError(
                    f"{at}/size", f"{key} {start} + size {size} is past the last id ({ID_LIMIT - 1})"
                )
        for n, (c2, h2, size2, _) in enumerate(seen):
            if c < c2 + size2 and c2 < c + size:
                raise ConfigError(f"{at}/containerID", f"range overlaps {where}/{n}")
            if h < h2 + size2 and h2 < h + size:
                raise ConfigError(f"{at}/hostID", f"range overlaps {where}/{n}")
        seen.append((c, h, size, j))
    return mappings


def prepare(
    kernel: k.Kernel, requests: list[IdmapMount], mounts: list[dict], propagation: str = ""
) -> dict[int, int]:
    """The idmapped detached trees, {mount index: fd} (see the module docstring). `mounts` has
    the bundle-relative sources made absolute. On failure, everything made is closed."""
    userns: dict = {}
    trees: dict[int, int] = {}
    prop = k.MS_PRIVATE if propagation in ("private", "rprivate") else k.MS_SLAVE
    try:
        for r in requests:
            where = f"/mounts/{r.index}"
            key = r.userns_path or (r.uid_map, r.gid_map)
            if key not in userns:
                try:
                    userns[key] = (
                        kernel.open(r.userns_path, os.O_RDONLY | os.O_CLOEXEC)
                        if r.userns_path
                        else kernel.new_userns(r.uid_map, r.gid_map)
                    )
                except OSError as e:
                    raise OcirtError(
                        f"{where}: make the user namespace of the idmapped mount", e.errno
                    ) from None
            source = mounts[r.index].get("source") or ""
            flags = k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC | (k.AT_RECURSIVE if r.recursive_tree else 0)
            try:
                trees[r.index] = kernel.open_tree(source, flags)
            except OSError as e:
                raise OcirtError(f"{where}/source: open_tree {source}", e.errno) from None
            fd = trees[r.index]
            try:
                if r.recursive_tree and not r.recursive_map:  # the whole tree slave, the top mapped
                    kernel.mount_setattr_fd(fd, 0, 0, prop, recursive=True)
                    kernel.mount_setattr_fd(
                        fd, k.MOUNT_ATTR_IDMAP, 0, 0, recursive=False, userns_fd=userns[key]
                    )
                else:
                    kernel.mount_setattr_fd(
                        fd,
                        k.MOUNT_ATTR_IDMAP,
                        0,
                        prop,
                        recursive=r.recursive_tree or r.recursive_map,
                        userns_fd=userns[key],
                    )
            except OSError as e:
                hint = (
                    " (its filesystem may not support idmapped mounts on this kernel)"
                    if e.errno == errno.EINVAL
                    else ""
                )
                raise OcirtError(
                    f"{where}: idmap {source} (mount_setattr MOUNT_ATTR_IDMAP){hint}", e.errno
                ) from None
    except BaseException:
        for fd in trees.values():
            kernel.close(fd)
        raise
    finally:
        for fd in userns.values():
            kernel.close(fd)
    return trees
