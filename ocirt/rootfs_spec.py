"""What the parent of `create` tells the init about the root filesystem (RootfsSpec), and which
mounts ask for an idmapping: the part of ocirt/rootfs.py the parent needs, without the rest
(rootfs.py is the largest module the init loads; the parent no longer carries it, ~0.1 MiB and
~0.3 ms of create's imports before its fork, and the init loads it itself)."""

from .record import field, record

# idmapped mounts (ocirt/idmap.py): never passed to mount(2)
IDMAP_OPTIONS = ("idmap", "ridmap")


def needs_idmap(m: dict) -> bool:
    """Does this mount ask for an idmapping (an option, or mappings of its own)?"""
    return "uidMappings" in m or "gidMappings" in m or any(o in IDMAP_OPTIONS for o in m.get("options") or ())


@record
class RootfsSpec:
    """What the init needs to build the root filesystem; made by the parent before fork."""

    rootfs: str
    mounts: list[dict]
    readonly: bool = False
    propagation: str = ""
    masked: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    devices: list[dict] = field(default_factory=list)
    in_userns: bool = False
    no_pivot: bool = False
    # (host dir, name under mount); with InitSpec.moved_in, from the parent's word (in_cgroup)
    cgroup_binds: list = field(default_factory=list)
    cgroup2: bool = False
    mount_label: str = ""
    # mount index -> a detached tree (fd) the parent made: idmapped (ocirt/idmap.py), or a bind
    # source opened before the user namespace (open_bind_sources; those indexes in source_trees,
    # used only where the init's own bind of the source is refused)
    idmap_fds: dict = field(default_factory=dict)
    source_trees: list[int] = field(default_factory=list)
