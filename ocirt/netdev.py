"""linux.netDevices: host network devices moved into the container's network namespace.

config-linux.md asks, for each entry "<host name>": {"name": "<name inside>"}:

- the runtime checks that the move is possible, and fails if the name is taken inside the
  container's namespace, unless the name is a template with "%d" (the kernel then picks a
  free one);
- the device keeps its attributes, including every permanent (IFA_F_PERMANENT) address of
  global scope (RT_SCOPE_UNIVERSE), of any family: a move drops addresses, so they are read
  before and added again after;
- the device is set up after the move;
- nothing is moved back at delete: when the namespace dies the kernel returns physical
  devices to the host and destroys virtual ones.

The move happens in `create`'s parent once the init exists in its new network namespace and
before the init goes on with its setup, so the devices are there for hooks and the process.
netlink is spoken with pyroute2, imported only when a config has netDevices (~150 ms).
"""

from __future__ import annotations

import errno as _errno
import os

from .errors import ConfigError, OcirtError, json_pointer

IFNAMSIZ = 16  # names are at most 15 bytes
IFA_F_PERMANENT = 0x80
IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
AF_INET6 = 10
RT_SCOPE_UNIVERSE = 0


def _pointer(host_name: str, *rest) -> str:
    return json_pointer(("linux", "netDevices", host_name) + rest)


def check_name(name, pointer: str) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(pointer, "must be a non-empty network device name")
    if len(name.encode()) >= IFNAMSIZ:
        raise ConfigError(pointer, f"network device name {name!r} is longer than {IFNAMSIZ - 1} bytes")
    if name in (".", "..") or "/" in name or ":" in name or any(c.isspace() for c in name):
        raise ConfigError(pointer, f"invalid network device name {name!r}")
    if name.count("%") > (1 if "%d" in name else 0):
        raise ConfigError(pointer, f"invalid network device name {name!r}: only one %d template is allowed")


def check(net_devices, new_netns: bool) -> dict:
    """Validate linux.netDevices before anything is made: {host name: name inside}."""
    if not net_devices:
        return {}
    if not new_netns:
        raise ConfigError(
            "/linux/netDevices",
            "network devices can only be moved into a "
            "network namespace of the container's own "
            "(linux.namespaces has no network entry)",
        )
    out, taken = {}, set()
    for host_name, spec in net_devices.items():
        check_name(host_name, _pointer(host_name))
        if "%" in host_name:
            raise ConfigError(_pointer(host_name), "a host device name cannot be a template")
        spec = spec or {}
        name = spec.get("name") or host_name
        check_name(name, _pointer(host_name, "name"))
        if "%d" not in name:
            if name in taken:
                raise ConfigError(
                    _pointer(host_name, "name"), f"two devices would be named {name!r} in the container"
                )
            taken.add(name)
        out[host_name] = name
    return out


def _addresses(ipr, index: int) -> list:
    """The permanent, global-scope addresses of a device, as (family, address, prefixlen,
    extra attributes) to add back after the move."""
    out = []
    for msg in ipr.get_addr(index=index):
        flags = msg.get_attr("IFA_FLAGS")
        if flags is None:
            flags = msg["flags"]
        if msg["scope"] != RT_SCOPE_UNIVERSE or not flags & IFA_F_PERMANENT:
            continue
        address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        extra = {}
        if msg["family"] == AF_INET6 and not flags & IFA_F_TENTATIVE:
            # the address passed duplicate address detection on the host already: it moves as
            # it was, usable at once, not tentative again for a second or two
            extra["flags"] = IFA_F_NODAD
        broadcast = msg.get_attr("IFA_BROADCAST")
        if broadcast:
            extra["broadcast"] = broadcast
        peer = msg.get_attr("IFA_ADDRESS")
        if msg.get_attr("IFA_LOCAL") and peer and peer != address:
            extra["address"] = peer  # point to point: IFA_ADDRESS is the peer
        out.append((msg["family"], address, msg["prefixlen"], extra))
    return out


class Moved:
    """A device moved into the container: what moving it back needs."""

    __slots__ = ("host_name", "index", "addresses", "was_up")

    def __init__(self, host_name: str, index: int, addresses: list, was_up: bool):
        self.host_name = host_name
        self.index = index  # inside the container's namespace
        self.addresses = addresses
        self.was_up = was_up


class Moves:
    """The moves of one create: the devices moved, and an fd of the container's network
    namespace, which keeps it (and so the devices) alive even if the init dies, so that undo()
    can still give them back."""

    def __init__(self) -> None:
        self.netns_fd = -1
        self.done: list = []

    def move(self, devices: dict, pid: int) -> None:
        if self.netns_fd < 0:
            self.netns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        move(devices, self.netns_fd, self.done)

    def undo(self) -> None:
        if self.done:
            move_back(self.done, self.netns_fd)
            self.done = []

    def close(self) -> None:
        if self.netns_fd >= 0:
            os.close(self.netns_fd)
            self.netns_fd = -1


def move(devices: dict, netns_fd: int, moved: list | None = None) -> None:
    """Move each host device into the network namespace open at `netns_fd` (the init's),
    renamed, with its global permanent addresses, and set it up. Each device moved is appended
    to `moved` (for move_back if create fails later)."""
    if not devices:
        return
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    moved = [] if moved is None else moved
    with IPRoute() as host, IPRoute(netns=f"/proc/self/fd/{netns_fd}") as inside:
        # Every device is checked before the first is moved (the spec: "MUST check if moving
        # the network interface to the container namespace is possible").
        found = {}
        for host_name, name in devices.items():
            where = _pointer(host_name)
            links = (
                host.get_links(*host.link_lookup(ifname=host_name))
                if host.link_lookup(ifname=host_name)
                else []
            )
            if not links:
                raise OcirtError(f"{where}: no network device {host_name!r} on the host")
            if "%d" not in name and inside.link_lookup(ifname=name):
                raise OcirtError(
                    f"{where}: a network device named {name!r} already exists "
                    "in the container's network namespace"
                )
            found[host_name] = links[0]
        for host_name, name in devices.items():
            where = _pointer(host_name)
            link = found[host_name]
            index = link["index"]
            addresses = _addresses(host, index)
            try:
                # One request: the kernel moves and renames together (a "%d" template is
                # resolved in the target namespace), so the host name never has to be free
                # inside.
                host.link("set", index=index, net_ns_fd=netns_fd, ifname=name)
            except NetlinkError as e:
                raise OcirtError(
                    f"{where}: cannot move network device {host_name!r} into the "
                    "container's network namespace",
                    errno=e.code,
                ) from None
            new_index = _find_moved(inside, name)
            moved.append(Moved(host_name, new_index, addresses, bool(link["flags"] & 1)))
            for family, address, prefixlen, extra in addresses:
                try:
                    inside.addr(
                        "add", index=new_index, family=family, address=address, prefixlen=prefixlen, **extra
                    )
                except NetlinkError as e:
                    if e.code != _errno.EEXIST:
                        raise OcirtError(
                            f"{where}: cannot add address {address}/{prefixlen} to {name!r}", errno=e.code
                        ) from None
            try:
                inside.link("set", index=new_index, state="up")
            except NetlinkError as e:
                raise OcirtError(f"{where}: cannot set {name!r} up", errno=e.code) from None


def move_back(moved: list, netns_fd: int) -> None:
    """Undo move() when create fails after it: a virtual device (veth, macvlan, ...) would
    otherwise die with the namespace. Best effort, last moved first."""
    if not moved:
        return
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host, IPRoute(netns=f"/proc/self/fd/{netns_fd}") as inside:
            for m in reversed(moved):
                try:
                    inside.link("set", index=m.index, state="down")
                    inside.link("set", index=m.index, net_ns_fd=own, ifname=m.host_name)
                    index = host.link_lookup(ifname=m.host_name)[0]
                    for family, address, prefixlen, extra in m.addresses:
                        try:
                            host.addr(
                                "add",
                                index=index,
                                family=family,
                                address=address,
                                prefixlen=prefixlen,
                                **extra,
                            )
                        except NetlinkError:
                            pass
                    if m.was_up:
                        host.link("set", index=index, state="up")
                except (NetlinkError, IndexError, OSError):
                    continue
    finally:
        os.close(own)


def _find_moved(inside, name: str) -> int:
    """The index of the device that just arrived (a template name is resolved by the kernel:
    take the newest device matching it)."""
    if "%d" not in name:
        found = inside.link_lookup(ifname=name)
        if found:
            return found[0]
        raise OcirtError(f"network device {name!r} is not in the container's namespace after the move")
    prefix, _, suffix = name.partition("%d")
    best = None
    for link in inside.get_links():
        ifname = link.get_attr("IFLA_IFNAME") or ""
        middle = ifname[len(prefix) : len(ifname) - len(suffix) if suffix else None]
        if ifname.startswith(prefix) and ifname.endswith(suffix) and middle.isdigit():
            if best is None or link["index"] > best:
                best = link["index"]
    if best is None:
        raise OcirtError(f"no network device matching {name!r} in the container's namespace after the move")
    return best
