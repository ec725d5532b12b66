"""linux.resources of config.json as typed values, plus the v1 -> v2 conversions.

`Resources.parse(d)` checks types (ConfigError with a JSON pointer on a wrong one) and keeps
None for every absent field, so the writers can tell "absent" from "0".

Zero handling follows runc (whose Go structs cannot tell 0 from absent): a 0 in memory
limit/reservation/swap/kernel/kernelTCP, cpu shares/quota/period/realtime*, blockIO weights
means "not set". pids.limit 0 is a real limit (the spec says so), as is swappiness 0 and idle 0.
"""

from __future__ import annotations

from ..errors import ConfigError, json_pointer

BASE = ("linux", "resources")

# The cgroup core files `unified` may write: limits of the cgroup itself. The others move
# processes (cgroup.procs, cgroup.threads), kill them (cgroup.kill), change what the runtime
# manages (cgroup.subtree_control, cgroup.type, cgroup.freeze) or are read-only.
CORE_SETTINGS = frozenset({"cgroup.max.depth", "cgroup.max.descendants", "cgroup.pressure"})


def ptr(*parts) -> str:
    return json_pointer(BASE + tuple(parts))


# ---------------------------------------------------------------- type checks


def _get(d: dict, key: str, path: tuple, kind: str):
    """d[key] checked against kind: 'int', 'uint', 'bool', 'str'; None when absent."""
    if key not in d or d[key] is None:
        return None
    v = d[key]
    where = json_pointer(BASE + path + (key,))
    if kind in ("int", "uint"):
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise ConfigError(where, f"must be an integer, not {type(v).__name__}")
        if kind == "uint" and v < 0:
            raise ConfigError(where, "must not be negative")
        if not -(1 << 63) <= v < (1 << 64 if kind == "uint" else 1 << 63):  # Go's int64, uint64
            raise ConfigError(where, f"{v} is out of range of a {kind}64")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise ConfigError(where, f"must be a boolean, not {type(v).__name__}")
        return v
    if kind == "str":
        if not isinstance(v, str):
            raise ConfigError(where, f"must be a string, not {type(v).__name__}")
        return v
    raise AssertionError(kind)


def _obj(d: dict, key: str, path: tuple) -> dict | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ConfigError(json_pointer(BASE + path + (key,)), "must be an object")
    return v


def _list(d: dict, key: str, path: tuple) -> list:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError(json_pointer(BASE + path + (key,)), "must be an array")
    for i, item in enumerate(v):
        if not isinstance(item, dict):
            raise ConfigError(json_pointer(BASE + path + (key, i)), "must be an object")
    return v


def _is_page_size(size: str) -> bool:
    """[0-9]+[KMGTPE]?B, without importing re on every create."""
    digits = size[:-1].rstrip("KMGTPE") if size.endswith("B") else ""
    return digits.isdigit() and digits.isascii() and len(size) - len(digits) <= 2


def _nz(v):
    """runc's 'zero means unset'."""
    return None if v == 0 else v


# ---------------------------------------------------------------- model
class _Record:
    """A light dataclass (the dataclasses module costs ~10 ms of import on the hot path).

    Subclasses list `_fields`; `_defaults` gives defaults (a type such as list is called to
    make a fresh value); any other missing field is None.
    """

    __slots__ = ()
    _fields: tuple = ()
    _defaults: dict = {}

    def __init__(self, *args, **kw):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__}: too many arguments")
        for name, v in zip(self._fields, args):
            setattr(self, name, v)
        for name in self._fields[len(args) :]:
            if name in kw:
                v = kw.pop(name)
            else:
                v = self._defaults.get(name)
                if isinstance(v, type):
                    v = v()
            setattr(self, name, v)
        if kw:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(kw)}")

    def _astuple(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other):
        return type(self) is type(other) and self._astuple() == other._astuple()

    def __hash__(self):
        return hash(self._astuple())

    def __repr__(self):
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"


class Memory(_Record):
    __slots__ = _fields = (
        "limit",
        "reservation",
        "swap",
        "kernel",
        "kernel_tcp",
        "swappiness",
        "disable_oom_killer",
        "use_hierarchy",
        "check_before_update",
    )

    limit: int | None
    reservation: int | None
    swap: int | None
    kernel: int | None
    kernel_tcp: int | None
    swappiness: int | None
    disable_oom_killer: bool | None
    use_hierarchy: bool | None
    check_before_update: bool | None

    def is_set(self) -> bool:
        return any(
            v is not None
            for v in (
                self.limit,
                self.reservation,
                self.swap,
                self.kernel,
                self.kernel_tcp,
                self.swappiness,
                self.disable_oom_killer,
                self.use_hierarchy,
            )
        )


class CPU(_Record):
    __slots__ = _fields = (
        "shares",
        "quota",
        "burst",
        "period",
        "realtime_runtime",
        "realtime_period",
        "cpus",
        "mems",
        "idle",
    )

    shares: int | None
    quota: int | None
    burst: int | None
    period: int | None
    realtime_runtime: int | None
    realtime_period: int | None
    cpus: str | None
    mems: str | None
    idle: int | None

    def is_set(self) -> bool:
        return any(
            v is not None
            for v in (
                self.shares,
                self.quota,
                self.burst,
                self.period,
                self.realtime_runtime,
                self.realtime_period,
                self.idle,
            )
        )

    def cpuset_is_set(self) -> bool:
        return bool(self.cpus) or bool(self.mems)


class WeightDevice(_Record):
    __slots__ = _fields = ("ptr", "major", "minor", "weight", "leaf_weight")

    ptr: str
    major: int
    minor: int
    weight: int | None
    leaf_weight: int | None


class ThrottleDevice(_Record):
    __slots__ = _fields = ("ptr", "major", "minor", "rate")

    ptr: str
    major: int
    minor: int
    rate: int


class BlockIO(_Record):
    # throttle: json key (THROTTLE_KEYS) -> list of ThrottleDevice
    __slots__ = _fields = ("weight", "leaf_weight", "weight_device", "throttle")

    weight: int | None
    leaf_weight: int | None
    weight_device: list[WeightDevice]
    throttle: dict[str, list[ThrottleDevice]]
    _defaults = {"weight_device": list, "throttle": dict}

    def is_set(self) -> bool:
        return (
            self.weight is not None
            or self.leaf_weight is not None
            or bool(self.weight_device)
            or any(self.throttle.values())
        )


THROTTLE_KEYS = (
    "throttleReadBpsDevice",
    "throttleWriteBpsDevice",
    "throttleReadIOPSDevice",
    "throttleWriteIOPSDevice",
)


class HugepageLimit(_Record):
    __slots__ = _fields = ("ptr", "page_size", "limit")

    ptr: str
    page_size: str
    limit: int


class Network(_Record):
    __slots__ = _fields = ("class_id", "priorities")  # priorities: [(name, priority)]

    class_id: int | None
    priorities: list[tuple[str, int]]
    _defaults = {"priorities": list}

    def is_set(self) -> bool:
        return self.class_id is not None or bool(self.priorities)


class RdmaLimit(_Record):
    __slots__ = _fields = ("ptr", "device", "hca_handles", "hca_objects")

    ptr: str
    device: str
    hca_handles: int | None
    hca_objects: int | None

    def line(self) -> str:
        out = [self.device]
        if self.hca_handles is not None:
            out.append(f"hca_handle={self.hca_handles}")
        if self.hca_objects is not None:
            out.append(f"hca_object={self.hca_objects}")
        return " ".join(out)


class DeviceRule(_Record):
    """One entry of linux.resources.devices, normalised: type in 'abc', major/minor None = '*'."""

    __slots__ = _fields = ("allow", "type", "major", "minor", "access")

    allow: bool
    type: str
    major: int | None
    minor: int | None
    access: str
    _defaults = {"type": "a", "access": "rwm"}

    def v1_line(self) -> str:
        """The text written to devices.allow / devices.deny."""
        if self.type == "a":
            return "a"
        maj = "*" if self.major is None else str(self.major)
        mnr = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {maj}:{mnr} {self.access}"

    def to_dict(self) -> dict:
        return {
            "allow": self.allow,
            "type": self.type,
            "major": self.major,
            "minor": self.minor,
            "access": self.access,
        }


class Resources(_Record):
    # devices: None when config.json has no devices key at all
    __slots__ = _fields = (
        "memory",
        "cpu",
        "block_io",
        "hugepage_limits",
        "network",
        "pids_limit",
        "rdma",
        "unified",
        "devices",
    )

    memory: Memory
    cpu: CPU
    block_io: BlockIO
    hugepage_limits: list[HugepageLimit]
    network: Network
    pids_limit: int | None
    rdma: list[RdmaLimit]
    unified: dict[str, str]
    devices: list[DeviceRule] | None
    _defaults = {
        "memory": Memory,
        "cpu": CPU,
        "block_io": BlockIO,
        "hugepage_limits": list,
        "network": Network,
        "rdma": list,
        "unified": dict,
    }

    @classmethod
    def parse(cls, d: dict | None) -> Resources:
        r = cls()
        if d is None:
            return r
        if not isinstance(d, dict):
            raise ConfigError(ptr(), "must be an object")

        m = _obj(d, "memory", ())
        if m is not None:
            p = ("memory",)
            r.memory = Memory(
                limit=_nz(_get(m, "limit", p, "int")),
                reservation=_nz(_get(m, "reservation", p, "int")),
                swap=_nz(_get(m, "swap", p, "int")),
                kernel=_nz(_get(m, "kernel", p, "int")),
                kernel_tcp=_nz(_get(m, "kernelTCP", p, "int")),
                swappiness=_get(m, "swappiness", p, "int"),
                disable_oom_killer=_get(m, "disableOOMKiller", p, "bool"),
                use_hierarchy=_get(m, "useHierarchy", p, "bool"),
                check_before_update=_get(m, "checkBeforeUpdate", p, "bool"),
            )
            sw = r.memory.swappiness
            if sw is not None and sw != -1 and not 0 <= sw <= 100:
                raise ConfigError(ptr("memory", "swappiness"), "must be between 0 and 100")

        c = _obj(d, "cpu", ())
        if c is not None:
            p = ("cpu",)
            r.cpu = CPU(
                shares=_nz(_get(c, "shares", p, "uint")),
                quota=_nz(_get(c, "quota", p, "int")),
                burst=_get(c, "burst", p, "uint"),
                period=_nz(_get(c, "period", p, "uint")),
                realtime_runtime=_nz(_get(c, "realtimeRuntime", p, "int")),
                realtime_period=_nz(_get(c, "realtimePeriod", p, "uint")),
                cpus=_get(c, "cpus", p, "str") or None,
                mems=_get(c, "mems", p, "str") or None,
                idle=_get(c, "idle", p, "int"),
            )
            quota, burst = r.cpu.quota, r.cpu.burst
            if quota is not None and quota > 0 and burst is not None and burst > quota:
                raise ConfigError(ptr("cpu", "burst"), f"must not be larger than quota ({quota})")

        b = _obj(d, "blockIO", ())
        if b is not None:
            p = ("blockIO",)
            bio = BlockIO(
                weight=_nz(_get(b, "weight", p, "uint")), leaf_weight=_nz(_get(b, "leafWeight", p, "uint"))
            )
            for i, wd in enumerate(_list(b, "weightDevice", p)):
                q: tuple = p + ("weightDevice", i)
                dev = WeightDevice(
                    json_pointer(BASE + q),
                    _req(wd, "major", q),
                    _req(wd, "minor", q),
                    _nz(_get(wd, "weight", q, "uint")),
                    _nz(_get(wd, "leafWeight", q, "uint")),
                )
                if dev.weight is None and dev.leaf_weight is None:
                    raise ConfigError(dev.ptr, "needs weight or leafWeight")
                bio.weight_device.append(dev)
            for key in THROTTLE_KEYS:
                items = []
                for i, td in enumerate(_list(b, key, p)):
                    q = p + (key, i)
                    rate = _get(td, "rate", q, "uint")
                    if rate is None:
                        raise ConfigError(json_pointer(BASE + q + ("rate",)), "is required")
                    items.append(
                        ThrottleDevice(
                            json_pointer(BASE + q), _req(td, "major", q), _req(td, "minor", q), rate
                        )
                    )
                bio.throttle[key] = items
            r.block_io = bio

        for i, h in enumerate(_list(d, "hugepageLimits", ())):
            q = ("hugepageLimits", i)
            size = _get(h, "pageSize", q, "str")
            if size is None:
                raise ConfigError(json_pointer(BASE + q + ("pageSize",)), "is required")
            if not _is_page_size(size):
                raise ConfigError(
                    json_pointer(BASE + q + ("pageSize",)), f"{size!r} is not a page size like 2MB or 1GB"
                )
            limit = _get(h, "limit", q, "uint")
            if limit is None:
                raise ConfigError(json_pointer(BASE + q + ("limit",)), "is required")
            r.hugepage_limits.append(HugepageLimit(json_pointer(BASE + q), size, limit))

        n = _obj(d, "network", ())
        if n is not None:
            p = ("network",)
            net = Network(class_id=_get(n, "classID", p, "uint"))
            for i, pr in enumerate(_list(n, "priorities", p)):
                q = p + ("priorities", i)
                name = _get(pr, "name", q, "str")
                prio = _get(pr, "priority", q, "uint")
                if not name:
                    raise ConfigError(json_pointer(BASE + q + ("name",)), "is required")
                if prio is None:
                    raise ConfigError(json_pointer(BASE + q + ("priority",)), "is required")
                net.priorities.append((name, prio))
            r.network = net

        pd = _obj(d, "pids", ())
        if pd is not None:
            r.pids_limit = _get(pd, "limit", ("pids",), "int")

        rd = _obj(d, "rdma", ())
        if rd is not None:
            for dev, lim in rd.items():
                q = ("rdma", dev)
                if not isinstance(lim, dict):
                    raise ConfigError(json_pointer(BASE + q), "must be an object")
                if not dev or any(ch.isspace() for ch in dev):
                    raise ConfigError(json_pointer(BASE + q), "is not a device name")
                e = RdmaLimit(
                    json_pointer(BASE + q),
                    dev,
                    _get(lim, "hcaHandles", q, "uint"),
                    _get(lim, "hcaObjects", q, "uint"),
                )
                if e.hca_handles is None and e.hca_objects is None:
                    raise ConfigError(e.ptr, "needs hcaHandles or hcaObjects")
                r.rdma.append(e)

        u = _obj(d, "unified", ())
        if u is not None:
            for k, v in u.items():
                if not isinstance(v, str):
                    raise ConfigError(ptr("unified", k), "must be a string")
                if not k or "/" in k or k in (".", ".."):
                    raise ConfigError(ptr("unified", k), "must be a file name of the cgroup")
                if "." not in k:
                    raise ConfigError(ptr("unified", k), "must look like CONTROLLER.PARAMETER")
                if k.startswith("cgroup.") and k not in CORE_SETTINGS:
                    raise ConfigError(
                        ptr("unified", k), "is a cgroup core file, not a resource setting: not written"
                    )
            r.unified = dict(u)

        if "devices" in d and d["devices"] is not None:
            r.devices = parse_device_rules(d["devices"])
        return r


def _req(d: dict, key: str, path: tuple) -> int:
    v = _get(d, key, path, "int")
    if v is None:
        raise ConfigError(json_pointer(BASE + path + (key,)), "is required")
    return v


def parse_device_rules(devices) -> list:
    if not isinstance(devices, list):
        raise ConfigError(ptr("devices"), "must be an array")
    rules = []
    for i, dv in enumerate(devices):
        q = ("devices", i)
        if not isinstance(dv, dict):
            raise ConfigError(json_pointer(BASE + q), "must be an object")
        allow = _get(dv, "allow", q, "bool")
        if allow is None:
            raise ConfigError(json_pointer(BASE + q + ("allow",)), "is required")
        typ = _get(dv, "type", q, "str") or "a"
        if typ not in ("a", "b", "c"):
            raise ConfigError(json_pointer(BASE + q + ("type",)), f"must be a, b or c, not {typ!r}")
        # -1 is the Go-side spelling of a wildcard; the kernel's rules take 32-bit numbers
        major = _device_number(_get(dv, "major", q, "int"), q + ("major",))
        minor = _device_number(_get(dv, "minor", q, "int"), q + ("minor",))
        access = _get(dv, "access", q, "str") or "rwm"
        # a letter twice is still a composition of r, w and m: taken once (the kernel reads at most
        # three letters of a rule, so it is not written as given)
        if not access or any(ch not in "rwm" for ch in access):
            raise ConfigError(
                json_pointer(BASE + q + ("access",)), f"must be made of r, w and m, not {access!r}"
            )
        access = "".join(ch for ch in "rwm" if ch in access)
        rules.append(DeviceRule(allow, typ, major, minor, access))
    return rules


def _device_number(n: int | None, where: tuple) -> int | None:
    if n is None or n == -1:
        return None
    if not 0 <= n <= 0xFFFFFFFF:
        raise ConfigError(json_pointer(BASE + where), f"out of range: -1 (any) or 0 to 4294967295, not {n}")
    return n


# ---------------------------------------------------------------- v1 -> v2 conversions


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], the curve current runc uses.

    A quadratic in log2(shares) through (2, 1), (1024, 100) and (262144, 10000), so the
    default 1024 shares maps to the default weight 100 (the older linear formula of runc
    <= 1.2 gave 39).
    """
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    import math  # a dlopen: only for a configuration that sets shares on cgroup v2

    x = math.log2(shares)
    exponent = (x * x + 125 * x) / 612.0 - 7.0 / 34.0
    return int(math.ceil(10**exponent))


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], linearly (runc's formula)."""
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int | None, limit: int | None, pointer: str) -> int | None:
    """OCI memory.swap is memory+swap; memory.swap.max is swap alone. -1 = 'max'."""
    if limit == -1 and swap is None:
        return -1  # unlimited memory, and swap too (v1 behaviour)
    if swap is None or swap == -1:
        return swap
    if limit == -1:
        return swap
    if limit is None:
        raise ConfigError(pointer, "cannot set a swap limit without a memory limit")
    if limit < 0:
        raise ConfigError(ptr("memory", "limit"), f"invalid memory limit {limit}")
    if swap < limit:
        raise ConfigError(pointer, f"memory+swap limit {swap} is smaller than the memory limit {limit}")
    return swap - limit


def max_str(v: int) -> str:
    """-1 (or any negative) -> 'max' for v2 files."""
    return "max" if v < 0 else str(v)
