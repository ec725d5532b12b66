"""The systemd cgroup driver (`--systemd-cgroup`): systemd owns the container's cgroup.

With this driver the container is a transient systemd unit, made over D-Bus with
StartTransientUnit, the way runc's systemd driver does it:

    linux.cgroupsPath  "slice:prefix:name"     (absent: ":ocirt:<container id>")
    unit               "<prefix>-<name>.scope" ("<name>.scope" without a prefix; a name
                       ending in ".slice" is a slice unit, used as is)
    slice              "system.slice" when empty; "-" is the root slice; "a-b.slice" is
                       the sub-slice b of a (/a.slice/a-b.slice)
    cgroup             <each hierarchy>/<slice path>/<unit>

The unit is started once the container's first process exists (a scope must be born with
its processes, the PIDs property), with Delegate=yes, accounting on for every controller,
and the resources systemd knows as unit properties (MemoryMax, CPUWeight, TasksMax, ...).
Everything is then also written to cgroupfs by the ordinary v1/v2 writers, because systemd
cannot express all of linux.resources; hierarchies systemd does not manage (v1 freezer,
cpuset, ...) get their directories from ocirt. `update` sets the properties on the live unit
(SetUnitProperties) before writing the files; `delete` stops the unit (StopUnit), which
removes systemd's directories, and removes ocirt's own.

Where systemd is not running (no /run/systemd/system, as sd_booted() checks), create fails
with a clear error instead of silently using cgroupfs.
"""

from __future__ import annotations

import _signal  # not signal: it imports enum
import os
import posixpath

from ..errors import ConfigError, OcirtError, pointer_part
from .cgroup import FsCgroup, _join
from .dbus import SYSTEM_BUS, SYSTEMD_PRIVATE, Connection, DBusError, Variant
from .manager import Manager
from .resources import Resources, shares_to_weight, swap_to_v2

SYSTEMD_RUN_DIR = "/run/systemd/system"
DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "ocirt"
JOB_TIMEOUT = 30.0
UINT64_MAX = 2**64 - 1

_DEST = "org.freedesktop.systemd1"
_PATH = "/org/freedesktop/systemd1"
_MANAGER = "org.freedesktop.systemd1.Manager"

_POINTER = "/linux/cgroupsPath"


# ---------------------------------------------------------------- names


def parse_cgroups_path(cgroups_path: str | None, container_id: str) -> tuple[str, str]:
    """(slice, unit name) for linux.cgroupsPath under the systemd driver."""
    if not cgroups_path:
        cgroups_path = f":{DEFAULT_PREFIX}:{container_id}"
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise ConfigError(
            _POINTER,
            'expected cgroupsPath to be of format "slice:prefix:name" '
            f'for systemd cgroups, got "{cgroups_path}" instead',
        )
    slice_, prefix, name = parts
    if not name:
        raise ConfigError(_POINTER, f'no unit name in "{cgroups_path}" (slice:prefix:name)')
    if "/" in name or "/" in prefix:
        raise ConfigError(_POINTER, f'invalid unit name in "{cgroups_path}": "/" is not allowed')
    if name.endswith(".slice"):
        unit = name
    else:
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    slice_ = slice_ or DEFAULT_SLICE
    expand_slice(slice_)  # checked now: a ConfigError before anything is made
    return slice_, unit


def expand_slice(slice_: str) -> str:
    """'a-b-c.slice' -> '/a.slice/a-b.slice/a-b-c.slice'; '-.slice' and '-' -> '/'."""
    if slice_ in ("-", "-.slice"):
        return "/"
    if not slice_.endswith(".slice") or "/" in slice_:
        raise ConfigError(_POINTER, f"invalid slice name: {slice_}")
    stem = slice_[: -len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise ConfigError(_POINTER, f"invalid slice name: {slice_}")
    out, acc = [], ""
    for part in stem.split("-"):
        acc = f"{acc}-{part}" if acc else part
        out.append(acc + ".slice")
    return "/" + "/".join(out)


def unit_cgroup(slice_: str, unit: str) -> str:
    """The unit's cgroup path, relative to systemd's root cgroup."""
    if unit.endswith(".slice"):
        return expand_slice(unit)
    return posixpath.join(expand_slice(slice_), unit)


# ---------------------------------------------------------------- properties


def _cpus_mask(spec: str, pointer: str) -> bytes:
    """'0-2,5' -> the little-endian byte mask systemd wants for AllowedCPUs (a kernel list, parsed
    as process.execCPUAffinity's is)."""
    from ..procattr import MAX_CPUS, _Where, parse_list

    bits = parse_list(spec, _Where("", "config.json"), pointer, MAX_CPUS)
    mask = bytearray((bits[-1] // 8 + 1) if bits else 0)
    for b in bits:
        mask[b // 8] |= 1 << (b % 8)
    return bytes(mask)


def _quota_per_sec(quota: int | None, period: int | None) -> int | None:
    """CPUQuotaPerSecUSec from quota/period, rounded up to 10 ms as systemd stores it."""
    if quota is None:
        return None
    if quota <= 0:
        return UINT64_MAX
    period = period or 100000
    usec = quota * 1000000 // period
    if usec % 10000:
        usec = (usec // 10000 + 1) * 10000
    return usec


def _limit(v: int) -> int:
    return UINT64_MAX if v < 0 else v


def resource_properties(r: Resources, kind: str, version: int = 0) -> list:
    """The unit properties for linux.resources, as [(name, Variant)].

    `version` is systemd's (0: unknown, assume recent); AllowedCPUs needs 244 and
    CPUQuotaPeriodUSec 242. What systemd cannot express is left to the cgroupfs writers.
    """
    props = []

    def add(name, sig, value):
        props.append((name, Variant(sig, value)))

    recent = version == 0 or version >= 244
    mem, cpu = r.memory, r.cpu
    if kind == "v2":
        if mem is not None:
            if mem.limit:
                add("MemoryMax", "t", _limit(mem.limit))
            if mem.reservation:
                add("MemoryLow", "t", _limit(mem.reservation))
            swap = swap_to_v2(mem.swap or None, mem.limit or None, "/linux/resources/memory/swap")
            if swap is not None:
                add("MemorySwapMax", "t", _limit(swap))
        if cpu is not None and cpu.shares:
            add("CPUWeight", "t", shares_to_weight(cpu.shares))
    else:
        if mem is not None and mem.limit:
            add("MemoryLimit", "t", _limit(mem.limit))
        if cpu is not None and cpu.shares:
            add("CPUShares", "t", cpu.shares)
        if r.block_io is not None and r.block_io.weight:
            add("BlockIOWeight", "t", r.block_io.weight)
    if cpu is not None:
        per_sec = _quota_per_sec(cpu.quota or None, cpu.period)
        if per_sec is not None:
            add("CPUQuotaPerSecUSec", "t", per_sec)
        if cpu.period and (version == 0 or version >= 242):
            add("CPUQuotaPeriodUSec", "t", cpu.period)
        if kind == "v2" and recent:
            if cpu.cpus:
                add("AllowedCPUs", "ay", _cpus_mask(cpu.cpus, "/linux/resources/cpu/cpus"))
            if cpu.mems:
                add("AllowedMemoryNodes", "ay", _cpus_mask(cpu.mems, "/linux/resources/cpu/mems"))
    if r.pids_limit is not None and r.pids_limit != 0:
        add("TasksMax", "t", _limit(r.pids_limit))
    if kind == "v2" and r.unified:
        props.extend(_unified_properties(r.unified, recent))
    if r.devices is not None:
        props.extend(device_properties(r.devices))
    return props


def _unified_properties(unified: dict, recent: bool) -> list:
    names = {
        "memory.high": "MemoryHigh",
        "memory.low": "MemoryLow",
        "memory.min": "MemoryMin",
        "memory.max": "MemoryMax",
        "memory.swap.max": "MemorySwapMax",
        "pids.max": "TasksMax",
    }
    out = []
    for key, value in unified.items():
        value = str(value).strip()
        pointer = f"/linux/resources/unified/{key}"
        try:
            if key in names:
                out.append((names[key], Variant("t", UINT64_MAX if value == "max" else int(value))))
            elif key == "cpu.weight":
                out.append(("CPUWeight", Variant("t", int(value))))
            elif key == "cpu.max":
                quota, _, period = value.partition(" ")
                period_n = int(period) if period else None
                per_sec = UINT64_MAX if quota == "max" else _quota_per_sec(int(quota), period_n)
                out.append(("CPUQuotaPerSecUSec", Variant("t", per_sec)))
                if period_n:
                    out.append(("CPUQuotaPeriodUSec", Variant("t", period_n)))
            elif key in ("cpuset.cpus", "cpuset.mems") and recent:
                name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                out.append((name, Variant("ay", _cpus_mask(value, pointer))))
        except ValueError:
            raise ConfigError(pointer, f"invalid value {value!r}") from None
    return out


def _device_names(kind: str, proc_devices: str = "/proc/devices") -> dict:
    """major -> name from /proc/devices, for "char-<name>" / "block-<name>"."""
    section = "Character devices:" if kind == "c" else "Block devices:"
    out: dict = {}
    inside = False
    try:
        with open(proc_devices) as f:
            for line in f:
                line = line.strip()
                if line.endswith(":"):
                    inside = line == section
                elif inside and line:
                    major, _, name = line.partition(" ")
                    out.setdefault(int(major), name.strip())
    except (OSError, ValueError):
        pass
    return out


def device_properties(rules, proc_devices: str = "/proc/devices") -> list:
    """DevicePolicy and DeviceAllow for the device rules, as far as systemd can say them.

    systemd has only allow lists. A rule it cannot express (any major with one minor, a
    major without a name in /proc/devices) turns its policy to "auto" with no list: systemd then filters nothing,
    and the exact rules are enforced by ocirt's own device filter (v2) or devices.allow and
    devices.deny (v1), which are written after the unit starts.
    """
    policy = "auto"
    allow: list = []
    for rule in rules:
        if rule.type == "a" and rule.major is None and rule.minor is None:
            if rule.allow:
                if set(rule.access) >= set("rwm"):
                    policy, allow = "auto", []
                    continue
                return [("DevicePolicy", Variant("s", "auto")), ("DeviceAllow", Variant("a(ss)", []))]
            policy, allow = "strict", []
            continue
        if not rule.allow:
            continue  # a deny systemd cannot say; the cgroupfs rules carry it
        if rule.type == "a" or (rule.major is None and rule.minor is not None):
            return [("DevicePolicy", Variant("s", "auto")), ("DeviceAllow", Variant("a(ss)", []))]
        kind = "char" if rule.type == "c" else "block"
        if rule.major is None:
            allow.append((f"{kind}-*", rule.access))  # every device of the kind
        elif rule.minor is None:
            name = _device_names(rule.type, proc_devices).get(rule.major)
            if name is None:
                return [("DevicePolicy", Variant("s", "auto")), ("DeviceAllow", Variant("a(ss)", []))]
            allow.append((f"{kind}-{name}", rule.access))
        else:
            allow.append((f"/dev/{kind}/{rule.major}:{rule.minor}", rule.access))
    if policy == "auto":
        allow = []
    return [("DevicePolicy", Variant("s", policy)), ("DeviceAllow", Variant("a(ss)", allow))]


def annotation_properties(annotations: dict) -> list:
    """org.systemd.property.<Name> annotations, as runc takes them: the value in GVariant text
    ("true", "uint64 100", "'text'", "@t 5")."""
    out = []
    for key, value in (annotations or {}).items():
        if not key.startswith("org.systemd.property."):
            continue
        name = key[len("org.systemd.property.") :]
        pointer = "/annotations/" + pointer_part(key)
        if not name or name in ("PIDs", "Delegate", "Slice", "Description"):
            raise ConfigError(pointer, f"systemd property {name!r} cannot be set")
        out.append((name, parse_gvariant(value, pointer)))
    return out


_GV_INTS = {
    "byte": "y",
    "int16": "n",
    "uint16": "q",
    "int32": "i",
    "uint32": "u",
    "int64": "x",
    "uint64": "t",
    "@y": "y",
    "@n": "n",
    "@q": "q",
    "@i": "i",
    "@u": "u",
    "@x": "x",
    "@t": "t",
}


def parse_gvariant(text: str, pointer: str) -> Variant:
    """The few GVariant text forms unit properties take: booleans, typed or plain integers,
    doubles and quoted strings."""
    t = str(text).strip()
    if t in ("true", "false"):
        return Variant("b", t == "true")
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return Variant("s", t[1:-1])
    kind, _, rest = t.partition(" ")
    try:
        if kind in _GV_INTS and rest:
            return Variant(_GV_INTS[kind], int(rest.strip(), 0))
        if kind in ("double", "@d") and rest:
            return Variant("d", float(rest))
        return Variant("i", int(t, 0))
    except ValueError:
        raise ConfigError(
            pointer,
            f"cannot parse {text!r} as a systemd property value (GVariant text: true, 'text', uint64 5, ...)",
        ) from None


# ---------------------------------------------------------------- the bus


class SystemdBus:
    """The manager calls the driver makes, over one connection."""

    def __init__(self, path: str | None = None, timeout: float = JOB_TIMEOUT):
        if path is None:
            path = SYSTEMD_PRIVATE if os.path.exists(SYSTEMD_PRIVATE) else SYSTEM_BUS
        self.conn = Connection(path, timeout=timeout)
        self._subscribed = False

    def close(self) -> None:
        self.conn.close()

    def _call(self, member: str, signature: str = "", args=()):
        return self.conn.call(_DEST, _PATH, _MANAGER, member, signature, args)

    def version(self) -> int:
        (v,) = self.conn.call(
            _DEST, _PATH, "org.freedesktop.DBus.Properties", "Get", "ss", [_MANAGER, "Version"]
        )
        digits = ""
        for ch in str(v.value).lstrip("v"):
            if not ch.isdigit():
                break
            digits += ch
        return int(digits or 0)

    def _wait_job(self, job: str, what: str, unit: str) -> None:
        msg = self.conn.wait_signal(
            lambda m: (
                m.member == "JobRemoved" and m.interface == _MANAGER and len(m.body) == 4 and m.body[1] == job
            )
        )
        result = msg.body[3]
        if result != "done":
            raise OcirtError(f"error {what} systemd unit {unit}: got {result!r}")

    def _subscribe(self) -> None:
        if not self._subscribed:
            self._call("Subscribe")
            self._subscribed = True

    def start_unit(self, unit: str, properties: list) -> None:
        self._subscribe()
        for attempt in (0, 1):
            try:
                (job,) = self._call(
                    "StartTransientUnit", "ssa(sv)a(sa(sv))", [unit, "replace", properties, []]
                )
                break
            except DBusError as e:
                if e.name == "org.freedesktop.systemd1.UnitExists" and attempt == 0:
                    # A failed unit of an earlier container of that name: clear it, once.
                    try:
                        self._call("ResetFailedUnit", "s", [unit])
                    except DBusError:
                        pass
                    continue
                raise OcirtError(f"cannot create systemd unit {unit}: {e}") from None
        self._wait_job(job, "creating", unit)

    def stop_unit(self, unit: str) -> None:
        self._subscribe()
        try:
            (job,) = self._call("StopUnit", "ss", [unit, "replace"])
        except DBusError as e:
            if e.name in ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed"):
                return
            raise OcirtError(f"cannot stop systemd unit {unit}: {e}") from None
        self._wait_job(job, "stopping", unit)
        try:
            self._call("ResetFailedUnit", "s", [unit])
        except DBusError:
            pass

    def set_properties(self, unit: str, properties: list) -> None:
        try:
            self._call("SetUnitProperties", "sba(sv)", [unit, True, properties])
        except DBusError as e:
            raise OcirtError(f"cannot update systemd unit {unit}: {e}") from None


def systemd_running(run_dir: str = SYSTEMD_RUN_DIR) -> bool:
    return os.path.isdir(run_dir)


# ---------------------------------------------------------------- the cgroup


def _fs_class(kind: str) -> type[FsCgroup]:
    if kind == "v2":
        from .cgroup_v2 import V2Cgroup

        return V2Cgroup
    from .cgroup_v1 import V1Cgroup

    return V1Cgroup


class SystemdCgroup(Manager):
    """A cgroup whose directories belong to a transient systemd unit.

    The files are those of a cgroupfs manager (`files`, a V1Cgroup or V2Cgroup at the unit's
    cgroup), which every operation but the unit's own goes to. create() makes nothing (the unit
    cannot exist before its first process); apply() before the unit exists keeps the resources;
    add_pid() of the first process starts the unit with them, makes the directories systemd
    leaves to us, and writes the resources to cgroupfs.
    """

    def __init__(
        self,
        files: FsCgroup,
        unit: str,
        slice_: str,
        description: str = "",
        extra: list | None = None,
        started: bool = False,
        bus=None,
    ):
        self.files = files
        self.unit = unit
        self.slice = slice_
        self.description = description
        self.extra = list(extra or [])  # properties from annotations
        self.started = started
        self._bus_factory = bus or SystemdBus
        self._pending: tuple | None = None  # (Resources, kernel) until the unit starts

    # what the cgroupfs manager knows
    layout = property(lambda self: self.files.layout)
    kind = property(lambda self: self.files.kind)
    paths = property(lambda self: self.files.paths)
    unified = property(lambda self: self.files.unified)
    created = property(lambda self: self.files.created)
    cgroups_path = property(lambda self: self.files.cgroups_path)
    fs = property(lambda self: self.files.fs)

    @classmethod
    def for_systemd(
        cls,
        layout,
        cgroups_path,
        container_id: str,
        annotations=None,
        fs=None,
        bus=None,
        run_dir: str = SYSTEMD_RUN_DIR,
    ) -> SystemdCgroup:
        slice_, unit = parse_cgroups_path(cgroups_path, container_id)
        extra = annotation_properties(annotations)
        if bus is None and not systemd_running(run_dir):  # a given bus stands for systemd
            # runc's words (engines match them), and why
            raise OcirtError(
                "systemd not running on this host, cannot use systemd cgroups "
                f"manager (no {run_dir}: run without --systemd-cgroup)"
            )
        rel = unit_cgroup(slice_, unit)
        paths, unified = {}, None
        if layout.kind == "v2":
            unified = _join(layout.unified, rel)
        else:
            for mnt, ctrls in layout.hierarchies().items():
                for c in ctrls:
                    paths[c] = _join(mnt, rel)
            if layout.kind == "hybrid":
                unified = _join(layout.unified, rel)
        files = _fs_class(layout.kind)(layout, paths, unified, cgroups_path=cgroups_path, fs=fs)
        return cls(files, unit, slice_, description=f"ocirt container {container_id}", extra=extra, bus=bus)

    def to_dict(self) -> dict:
        d = self.files.to_dict()
        d["systemd"] = {"unit": self.unit, "slice": self.slice, "started": self.started}
        return d

    @classmethod
    def from_saved(cls, layout, d: dict, fs=None, bus=None) -> SystemdCgroup:
        files = _fs_class(layout.kind).from_dict(
            layout, {k: v for k, v in d.items() if k != "systemd"}, fs=fs
        )
        sd = d["systemd"]
        return cls(files, sd["unit"], sd.get("slice", ""), started=bool(sd.get("started")), bus=bus)

    # -- the unit ---------------------------------------------------------------------------

    def _unit_properties(self, pid: int, r: Resources | None, version: int) -> list:
        props = [("Description", Variant("s", self.description or self.unit))]
        if self.unit.endswith(".slice"):
            props.append(("Wants", Variant("as", [self.slice])))
        else:
            props += [
                ("Slice", Variant("s", self.slice)),
                ("PIDs", Variant("au", [pid])),
                ("Delegate", Variant("b", True)),
            ]
        io = "IOAccounting" if self.kind == "v2" else "BlockIOAccounting"
        props += [
            ("MemoryAccounting", Variant("b", True)),
            ("CPUAccounting", Variant("b", True)),
            (io, Variant("b", True)),
            ("TasksAccounting", Variant("b", True)),
            ("DefaultDependencies", Variant("b", False)),
        ]
        if r is not None:
            props += resource_properties(r, self.kind, version)
        return props + self.extra

    def create(self, warn=None) -> None:
        """Nothing yet: the unit, and so its cgroup, starts with the first process."""

    def sub(self, paths: dict):
        return self.files.sub(paths)

    def apply(self, resources, kernel=None) -> None:
        r = resources if isinstance(resources, Resources) else Resources.parse(resources)
        if not self.started:
            resource_properties(r, self.kind)  # a ConfigError now, not after the fork
            self._pending = (r, kernel)
            return

        def update(bus):
            props = resource_properties(r, self.kind, bus.version())
            if props:
                bus.set_properties(self.unit, props)

        self._with_bus(update)
        self.files.apply(r, kernel)

    def _with_bus(self, fn):
        bus = self._bus_factory()
        try:
            return fn(bus)
        finally:
            bus.close()

    def self_placement(self) -> tuple[str | None, list[str]] | None:
        return None  # the unit, and its directory, start with the first process

    def add_pid(self, pid: int) -> None:
        if self.started:
            self.files.add_pid(pid)
            return
        r, kernel = self._pending or (None, None)

        def start(bus):
            version = bus.version() if r is not None else 0
            bus.start_unit(self.unit, self._unit_properties(pid, r, version))

        self._with_bus(start)
        self.started = True
        # The hierarchies systemd leaves alone (v1 freezer, cpuset, ...), and controllers it
        # did not enable on the way down (v2 hugetlb, rdma, misc), are ocirt's to set up: the
        # cgroupfs manager's create() does that, leaving alone what exists.
        self.files.create()
        self.files.add_pid(pid)
        if r is not None:
            self._pending = None
            self.files.apply(r, kernel)

    def destroy(self, timeout: float = 2.0) -> None:
        """Stop the unit (systemd removes its directories), then remove ocirt's."""
        failure = None
        try:
            self._with_bus(lambda b: b.stop_unit(self.unit))
        except OcirtError as e:
            failure = e  # systemd gone? remove what can be removed, then tell
        self.started = False
        self.files.destroy(timeout)
        for d in self.dirs():  # what systemd left, e.g. a v1 hierarchy it does not know
            try:
                self.files.rmtree(d, timeout)
            except OSError:
                pass
        if failure is not None and any(self.fs.isdir(d) for d in self.dirs()):
            raise failure

    # -- the rest is cgroupfs ---------------------------------------------------------------

    def dirs(self) -> list:
        return self.files.dirs()

    def path(self, controller: str | None = None) -> str | None:
        return self.files.path(controller)

    def device_rules(self) -> list | None:
        return self.files.device_rules()

    def pids(self) -> list:
        return self.files.pids()

    def wait_empty(self, timeout: float = 5.0) -> bool:
        return self.files.wait_empty(timeout)

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        self.files.kill_all(sig)

    def freeze(self, timeout: float = 10.0) -> None:
        self.files.freeze(timeout)

    def thaw(self) -> None:
        self.files.thaw()

    def frozen(self) -> bool:
        return self.files.frozen()

    def stats(self) -> dict:
        return self.files.stats()

    def __repr__(self) -> str:
        return f"SystemdCgroup(unit={self.unit!r}, files={self.files!r})"
