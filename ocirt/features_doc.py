"""The Features structure (features.md, features-linux.md): what `ocirt features` prints.

Every list is read from the module that implements it, so it can't claim more than ocirt does.
"""

from . import SPEC_VERSION, __version__

OCI_VERSION_MIN = "1.0.0"

# Annotations of config.json that change what ocirt does (features.md: a value ending in "." is a
# prefix): org.systemd.property.<Name> become properties of the container's systemd unit
# (cgroups/systemd.py, annotation_properties) and org.criu.config names the CRIU configuration
# file of checkpoint and restore (checkpoint.py). Engines and image converters read the list to
# keep such keys, when they come from an image or a user, out of config.json.
UNSAFE_ANNOTATIONS = ["org.criu.config", "org.systemd.property."]


def features() -> dict:
    from . import capabilities, hooks, namespaces, procattr, rootfs, seccomp

    mount_options = (
        set(rootfs.FLAG_OPTIONS)
        | set(rootfs.PROPAGATION_OPTIONS)
        | set(rootfs.RECURSIVE_OPTIONS)
        | set(rootfs.IDMAP_OPTIONS)
        | {"tmpcopyup"}
    )
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(hooks.HOOK_NAMES),
        "mountOptions": sorted(mount_options),
        "linux": {
            "namespaces": sorted(namespaces.FLAGS),
            "capabilities": sorted(capabilities.NUMBERS, key=capabilities.NUMBERS.__getitem__),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True},
            "seccomp": seccomp.features(),
            # what ocirt implements (ocirt/lsm.py), not whether this host has the LSM
            # (features-linux.md); what a host lacks is create's to tell (lsm.check)
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            "memoryPolicy": procattr.features(),
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},  # ocirt/idmap.py
            "netDevices": {"enabled": True},
        },
        "annotations": {"io.ocirt.version": __version__},
        "potentiallyUnsafeConfigAnnotations": list(UNSAFE_ANNOTATIONS),
    }
