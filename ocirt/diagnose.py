"""`ocirt check`: every problem of a bundle at once, before anything runs.

`create` stops at the first problem; this lists them all: the schema errors (through the jsonschema
library: every error, each with its JSON pointer), then what create checks against this host, each
check on its own so that one failure does not hide the next: namespaces the kernel lacks, cgroup
controllers the resources need, LSM labels without their module, capabilities the runtime cannot
grant, the seccomp profile, idmapped mounts, network devices, the rootfs, intelRdt.

Speed does not matter here (nothing on the hot path imports this module).
"""

from __future__ import annotations

import os

from .errors import ConfigError, OcirtError, pointer_part
from .record import field, record

# linux.resources section -> the controller it needs: (cgroup v1, cgroup v2); None: not there
_CONTROLLERS = {
    "memory": ("memory", "memory"),
    "cpu": ("cpu", "cpu"),
    "pids": ("pids", "pids"),
    "blockIO": ("blkio", "io"),
    "hugepageLimits": ("hugetlb", "hugetlb"),
    "network": ("net_cls", None),
    "rdma": ("rdma", "rdma"),
    "devices": ("devices", None),
}


@record
class Problem:
    level: str  # "error": create would fail; "warning": create goes on and says so
    pointer: str  # JSON pointer into config.json ("" for the file as a whole)
    message: str

    def as_dict(self) -> dict:
        return {"level": self.level, "pointer": self.pointer, "message": self.message}

    def text(self) -> str:
        where = f"{self.pointer}: " if self.pointer else ""
        return f"{self.level}: config.json: {where}{self.message}"


@record
class Report:
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.level == "error" for p in self.problems)

    def error(self, pointer: str, message: str) -> None:
        self.problems.append(Problem("error", pointer, message))

    def warning(self, pointer: str, message: str) -> None:
        self.problems.append(Problem("warning", pointer, message))

    def attempt(self, fn, *args):
        """fn(*args); an OcirtError (ConfigError: with its pointer) becomes an error problem."""
        try:
            return fn(*args)
        except ConfigError as e:
            self.error(e.pointer, e.rule)
        except OcirtError as e:
            self.error("", str(e))
        except OSError as e:
            self.error("", f"{e.strerror or e}")
        return None


def check_bundle(bundle: str) -> Report:
    """Every problem of `bundle`'s config.json, for this host."""
    from . import jsonio

    report = Report()
    path = os.path.join(bundle, "config.json")
    try:
        config = jsonio.load_path(path)
    except OSError as e:
        report.error("", f"cannot read {path}: {e.strerror or e}")
        return report
    except (ValueError, RecursionError) as e:
        report.error("", f"invalid JSON: {e}")
        return report
    if not isinstance(config, dict):
        report.error("", "must be an object")
        return report
    schema_errors(config, report)
    if report.problems:  # the host checks read the config's shape: only a valid one
        return report
    host_checks(config, os.path.abspath(bundle), report)
    return report


def schema_errors(config: dict, report: Report) -> None:
    """ociVersion, every schema error (jsonschema, in document order), the duplicate checks."""
    from .validate import check_rules, check_version, jsonschema_error, jsonschema_validator

    if report.attempt(check_version, config) is None and report.problems:
        return
    errors = []
    for error in jsonschema_validator().iter_errors(config):
        # an anyOf/oneOf: the branch that matched best, as validate() reports it
        if error.context:
            from jsonschema.exceptions import best_match

            error = best_match(error.context) or error
        errors.append(jsonschema_error(error))
    seen = set()
    for pointer, _keyword, rule in sorted(errors, key=lambda e: _pointer_key(e[0])):
        if (pointer, rule) not in seen:
            seen.add((pointer, rule))
            report.error(pointer, rule)
    if not errors:  # and the rules after the schema, as create's validation
        report.attempt(check_rules, config)


def _pointer_key(pointer: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in pointer.split("/")]


def host_checks(config: dict, bundle: str, report: Report) -> None:
    """What create checks against this host, each check on its own."""
    from . import capabilities, checks, lsm, namespaces, process
    from . import config as config_mod

    linux = config.get("linux") or {}
    ns = report.attempt(namespaces.parse, config)
    rootfs = report.attempt(config_mod.rootfs_path, bundle, config)
    if rootfs is not None and not os.path.isdir(rootfs):
        report.error("/root/path", f"rootfs {rootfs} is not a directory")
    proc_cfg = config.get("process")
    if not proc_cfg:
        report.warning("/process", "no process: create works, start will fail")
    else:
        spec = report.attempt(process.ProcessSpec.from_config, proc_cfg)
        if spec is not None:
            report.attempt(spec.check)
            for warning in capabilities.unknown(spec.capabilities, spec.cap_allowed):
                pointer, _, message = warning.partition(": ")
                report.warning(pointer, message)
        if proc_cfg.get("terminal"):
            report.warning("/process/terminal", "create needs --console-socket (or use run)")
    report.attempt(lsm.check, config)
    _namespaces_available(config, report)
    if ns is not None:
        report.attempt(namespaces.check_sysctl, linux.get("sysctl") or {}, ns)
        report.attempt(checks.check_static, config, ns)  # (create's own, from config.json alone)
    _cgroup_controllers(linux.get("resources") or {}, report)
    if linux.get("seccomp"):
        _seccomp(linux["seccomp"], report)
    if linux.get("netDevices") is not None and ns is not None:
        from . import netdev

        if report.attempt(netdev.check, linux["netDevices"], ns.has("network")) is not None:
            for name in linux["netDevices"]:
                if not os.path.exists(f"/sys/class/net/{name}"):
                    report.error(
                        f"/linux/netDevices/{pointer_part(name)}", f"no network device {name!r} on this host"
                    )
    if linux.get("intelRdt") is not None:
        _intel_rdt(report)
    from .rootfs_spec import needs_idmap

    if ns is not None and any(isinstance(m, dict) and needs_idmap(m) for m in config.get("mounts") or ()):
        from . import idmap

        report.attempt(idmap.check, config, ns)


def _namespaces_available(config: dict, report: Report) -> None:
    from .namespaces import PROC_NAMES

    for i, entry in enumerate((config.get("linux") or {}).get("namespaces") or []):
        name = PROC_NAMES.get(entry.get("type"))
        if name and not os.path.exists(f"/proc/self/ns/{name}"):
            report.error(f"/linux/namespaces/{i}", f"this kernel has no {entry['type']} namespace")


def _cgroup_controllers(resources: dict, report: Report) -> None:
    from . import cgroups

    try:
        layout = cgroups.detect()
    except OcirtError as e:
        if any(v not in (None, {}, []) for v in resources.values()):
            report.error("/linux/resources", f"no cgroup hierarchy: {e}")
        return
    available_v2: set[str] = set()
    if layout.unified:
        try:
            with open(os.path.join(layout.unified, "cgroup.controllers")) as f:
                available_v2 = set(f.read().split())
        except OSError:
            pass
    for section, value in resources.items():
        if value in (None, {}, []) or section not in _CONTROLLERS:
            continue
        v1, v2 = _CONTROLLERS[section]
        if layout.kind == "v2":
            if section == "devices":
                continue  # an eBPF program, no controller
            if v2 is None or v2 not in available_v2:
                report.error(
                    f"/linux/resources/{section}", f"cgroup v2 has no {v2 or section} controller on this host"
                )
        elif v1 not in layout.mounts:
            report.error(
                f"/linux/resources/{section}", f"no cgroup v1 hierarchy with the {v1} controller on this host"
            )
    if resources.get("unified") and not layout.unified:
        report.error("/linux/resources/unified", "no cgroup v2 hierarchy on this host")
    memory = resources.get("memory") or {}
    for key in ("kernel", "kernelTCP"):
        if memory.get(key) is not None:
            report.warning(f"/linux/resources/memory/{key}", "deprecated: kernel memory limits are ignored")


def _seccomp(profile: dict, report: Report) -> None:
    from . import seccomp

    flt = report.attempt(seccomp.compile, profile)
    if flt is None:
        return
    for name in flt.unknown_syscalls:
        report.warning(
            "/linux/seccomp/syscalls", f"libseccomp does not know syscall {name!r}: its rule is skipped"
        )
    for name in flt.skipped_architectures:
        report.warning("/linux/seccomp/architectures", f"libseccomp cannot build for {name}: skipped")


def _intel_rdt(report: Report) -> None:
    from .checks import check_intel_rdt

    report.attempt(check_intel_rdt)
