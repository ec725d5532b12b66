"""Checkpoint and restore of a container with CRIU (ocirt/criu.py speaks its RPC protocol).

checkpoint: CRIU dumps the container's process tree (frozen through its cgroup) into the image
directory; unless --leave-running or --pre-dump, the processes are gone afterwards and the
container is deleted. A failed dump leaves the container running (CRIU resumes it), and removes
the image directory if this checkpoint made it.

restore: a new container of the bundle's config.json (state dir, cgroup with its limits), whose
processes CRIU makes from the images: the `criu swrk` process is put into the container's cgroup
first, so the restored tree is born there; the restored init becomes our child (rst_sibling).
prestart and createRuntime hooks run when CRIU has set up the namespaces (runc's
"setup-namespaces" notification). A failed restore leaves nothing: CRIU kills what it made, we
remove the cgroup and the state dir.

Mounts are described to CRIU as runc describes them: a bind mount (and a device node, and with
masked paths /dev/null) is an external mount whose key is its destination; at restore the key
maps to the bind source on this host. The stdio pipes of the init are recorded at dump
(descriptors.json) and given back from ours at restore.
"""

from __future__ import annotations

import os
import stat

from . import criu, jsonio
from .errors import OcirtError
from .mapping import is_bind
from .record import field, record
from .state import StateDir, Status, proc_start_time

DESCRIPTORS = "descriptors.json"
CLONE_NEWNET = 0x40000000
_DEFAULT_DEVICE_PATHS = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


@record
class CriuOptions:
    """The options checkpoint and restore share (runc's names)."""

    image_path: str = ""
    work_path: str = ""
    criu_path: str = "criu"
    tcp_established: bool = False
    ext_unix_sk: bool = False
    shell_job: bool = False
    file_locks: bool = False
    lazy_pages: bool = False
    manage_cgroups_mode: str = ""
    empty_ns: list = field(default_factory=list)
    auto_dedup: bool = False
    # checkpoint only
    parent_path: str = ""
    leave_running: bool = False
    pre_dump: bool = False
    page_server: str = ""
    status_fd: int = -1
    # restore only
    bundle: str = "."
    detach: bool = False
    pid_file: str = ""
    console_socket: str = ""
    no_pivot: bool = False
    no_subreaper: bool = False
    lsm_profile: str = ""
    lsm_mount_context: str = ""
    systemd_cgroup: bool = False


# -- what both directions tell CRIU ------------------------------------------------------------------


def common_opts(o: CriuOptions, config: dict, log_file: str) -> dict:
    opts = {
        "log_level": 4,
        "log_file": log_file,
        "manage_cgroups": True,
        "notify_scripts": True,
        "shell_job": o.shell_job,
        "tcp_established": o.tcp_established,
        "ext_unix_sk": o.ext_unix_sk,
        "file_locks": o.file_locks,
        "orphan_pts_master": True,
        "auto_dedup": o.auto_dedup,
        "lazy_pages": o.lazy_pages,
        "empty_ns": empty_ns_flags(o.empty_ns),
    }
    if o.manage_cgroups_mode:
        mode = criu.CG_MODES.get(o.manage_cgroups_mode)
        if mode is None or o.manage_cgroups_mode in ("none", "props"):
            raise OcirtError(
                f"invalid manage cgroups mode: {o.manage_cgroups_mode} (soft, full, strict or ignore)"
            )
        opts["manage_cgroups_mode"] = mode
    conf = (config.get("annotations") or {}).get("org.criu.config")
    if conf is None:
        opts["config_file"] = "/etc/criu/runc.conf"  # what runc and crun point CRIU at
    elif conf:
        opts["config_file"] = conf
    return opts


def empty_ns_flags(names: list) -> int:
    flags = 0
    for name in names:
        if name != "network":
            raise OcirtError(f"namespace {name!r} is not supported by --empty-ns (only network)")
        flags |= CLONE_NEWNET
    return flags


def _ns_path(config: dict, kind: str) -> str:
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == kind and ns.get("path"):
            return ns["path"]
    return ""


_EXT_NS = {"network": ("net", "extRootNetNS"), "pid": ("pid", "extRootPidNS")}


def _device_paths(config: dict) -> list:
    paths = list(_DEFAULT_DEVICE_PATHS)
    for d in (config.get("linux") or {}).get("devices") or []:
        if d.get("path") and d["path"] not in paths:
            paths.append(d["path"])
    return paths


def _open_dir(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise OcirtError(f"{what} {path}: {e.strerror}", errno=e.errno) from None


def _mkdir(path: str, what: str) -> bool:
    """Make `path` (mode 0700); True if this call made it."""
    try:
        os.mkdir(path, 0o700)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise OcirtError(f"{what} {path}: {e.strerror}", errno=e.errno) from None


def failure(e: OcirtError, what: str, log_path: str, criu_path: str) -> OcirtError:
    """CRIU's failure as one line: what failed (its errno's words where it has one), CRIU's
    reason (from its log), the log's path where this run of CRIU wrote one (fresh_log took any
    earlier one away), and whether this kernel fails CRIU's own check."""
    reason = (getattr(e, "cr_errmsg", "") or criu.log_error_line(log_path)).replace("\n", " ")
    msg = f"{what}: {e}" + (f": {reason}" if reason else "")
    if isinstance(e, criu.CriuError) and not criu.host_passes_check(criu_path):
        msg += " (CRIU does not support this kernel: `criu check` fails here)"
    return OcirtError(f"{msg}; log file: {log_path}" if os.path.exists(log_path) else msg)


def fresh_log(log_path: str) -> None:
    """No log of an earlier run where this one's goes: its reason is never taken for this one's
    (CRIU writes its log anew, once it runs)."""
    try:
        os.unlink(log_path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise OcirtError(f"remove the earlier log {log_path}", e.errno) from None


# -- checkpoint ------------------------------------------------------------------------------------------


def checkpoint(c, o: CriuOptions) -> None:
    """Checkpoint the open (locked) container `c` (container.OpenContainer)."""
    status = c.status()
    if status not in (Status.RUNNING, Status.PAUSED):
        raise OcirtError(f"container cannot be checkpointed in {status.value} state")
    from . import config as config_mod

    try:
        config = config_mod.load(c.state.bundle)
    except OcirtError:
        config = {}  # the bundle went away: checkpoint what create recorded
    image_path = os.path.abspath(o.image_path or "checkpoint")
    made_images = _mkdir(image_path, "image path")
    # the log goes to the state dir by default: kept while the container is, gone with it
    work_path = os.path.abspath(o.work_path or c.sd.path)
    _mkdir(work_path, "work path")  # kept after a failure: the error names the log in it
    log_name = "pre-dump.log" if o.pre_dump else "dump.log"
    log_path = os.path.join(work_path, log_name)
    fds: list = []
    try:
        fds.append(_open_dir(image_path, "image path"))
        fds.append(_open_dir(work_path, "work path"))
        opts = common_opts(o, config, log_name)
        opts.update(
            images_dir_fd=fds[0],
            work_dir_fd=fds[1],
            root=c.state.rootfs,
            pid=c.state.pid,
            leave_running=o.leave_running,
        )
        freezer = _freezer_dir(c)
        if freezer:
            opts["freeze_cgroup"] = freezer
        if o.page_server:
            opts["ps"] = _page_server(o.page_server)
        if o.parent_path:
            opts["parent_img"] = o.parent_path
            opts["track_mem"] = True
        external = []
        for kind, (name, key) in _EXT_NS.items():
            path = _ns_path(config, kind)
            if path:
                external.append(f"{name}[{os.stat(path).st_ino}]:{key}")
        if external:
            opts["external"] = external
        req_type = criu.DUMP
        if o.pre_dump:
            req_type = criu.PRE_DUMP
            _need_feature(o.criu_path, "mem_track", "--pre-dump", "track memory changes")
        if o.lazy_pages:
            _need_lazy_pages(o.criu_path)
        if not o.pre_dump:
            opts["ext_mnt"] = _dump_mounts(config, c.state.pid)
            _write_descriptors(image_path, c.state.pid)
        status_fd = [o.status_fd] if o.lazy_pages and o.status_fd >= 0 else []

        def on_notify(script, _pid, _fds):
            if script == "status-ready" and status_fd:
                try:
                    os.write(status_fd[0], b"\0")
                    os.close(status_fd.pop())
                except OSError:
                    pass

        fresh_log(log_path)
        try:
            criu.request(o.criu_path, {"type": req_type, "opts": opts}, on_notify, stdio_null=True)
        except OcirtError as e:
            raise failure(e, "checkpoint failed", log_path, o.criu_path) from None
    except BaseException:
        if made_images:
            _rmtree(image_path)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    if not (o.leave_running or o.pre_dump):
        _after_dump(c)


def _freezer_dir(c) -> str:
    try:
        cg = c.cgroup()
        if cg.kind == "none":
            return ""
        return cg.path("freezer") or (cg.path() if cg.kind == "v2" else "") or ""
    except (OSError, OcirtError, AttributeError):
        return ""


def _page_server(value: str) -> dict:
    address, _, port = value.rpartition(":")
    if not address or not port.isdigit():
        raise OcirtError(f"--page-server: {value!r} is not ADDRESS:PORT")
    return {"address": address, "port": int(port)}


def _need_lazy_pages(criu_path: str) -> None:
    _need_feature(criu_path, "lazy_pages", "--lazy-pages", "restore pages lazily (userfaultfd)")


def _need_feature(criu_path: str, feature: str, flag: str, what: str) -> None:
    """One line if CRIU cannot do `what` here, or cannot even answer the question."""
    try:
        supported = criu.features(criu_path, {feature: True}).get(feature)
    except criu.CriuError as e:
        kernel = "" if criu.host_passes_check(criu_path) else " (`criu check` fails on this kernel)"
        raise OcirtError(
            f"{flag}: CRIU cannot check whether it can {what} here: {e.message}{kernel}"
        ) from None
    if not supported:
        raise OcirtError(f"{flag}: CRIU cannot {what} on this host")


def _dump_mounts(config: dict, pid: int) -> list:
    ext = []
    for m in config.get("mounts") or []:
        if is_bind(m) and m.get("destination"):
            ext.append({"key": m["destination"], "val": m["destination"]})
    for path in (config.get("linux") or {}).get("maskedPaths") or []:
        try:
            st = os.stat(f"/proc/{pid}/root{path}")
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            ext.append({"key": path, "val": "/dev/null"})
    for path in _device_paths(config):
        ext.append({"key": path, "val": path})
    return ext


def _write_descriptors(image_path: str, pid: int) -> None:
    names = []
    for fd in (0, 1, 2):
        try:
            names.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            names.append("")
    _write_json(os.path.join(image_path, DESCRIPTORS), names)


def _write_json(path: str, value) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "w") as f:
        f.write(jsonio.dumps(value))


def _after_dump(c) -> None:
    """CRIU killed the processes: wait for them to be gone, then delete the container. The dump
    succeeded, so the checkpoint does: a cgroup that cannot be removed is a warning, as runc has
    it (a copy restored on this host while a lazy dump still served its pages went into it: on
    cgroup v2 without a cgroup namespace CRIU restores into the path it dumped)."""
    from .children import wait_gone

    wait_gone(c.state.pid, c.state.pid_start)
    try:
        c.cgroup().wait_empty()
    except (OSError, OcirtError):
        pass
    try:
        c.destroy()
        return
    except (OSError, OcirtError) as e:
        from .container import _warn

        (c.warn or _warn)(f"checkpoint: the container's cgroup stays: {e}")
    c.sd.remove()
    hooks = c.state.hooks.get("poststop")
    if hooks:
        from . import hooks as hooks_mod

        hooks_mod.run_all({"poststop": hooks}, "poststop", c.state.oci(Status.STOPPED), c.warn or _warn)


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- restore ---------------------------------------------------------------------------------------------


def restore(root: str, container_id: str, o: CriuOptions, kernel, warn=None) -> int:
    """Restore `container_id` from o.image_path with the bundle's config.json. Detached: 0 once
    it runs; else wait for its init and return its exit code (the container is deleted then)."""
    from . import config as config_mod
    from .container import OpenContainer
    from .state import check_id

    check_id(container_id)
    bundle = os.path.abspath(o.bundle)
    config = config_mod.load(bundle)
    rootfs = config_mod.rootfs_path(bundle, config)
    linux = config.get("linux") or {}
    proc_cfg = config.get("process") or {}
    image_path = os.path.abspath(o.image_path or "checkpoint")
    if not os.path.isdir(image_path):
        raise OcirtError(f"restore: image path {image_path}: no such directory")
    if proc_cfg.get("terminal") and not o.console_socket:
        raise OcirtError("cannot allocate tty if ocirt will detach without setting console socket")
    descriptors = _read_descriptors(image_path)
    if o.lazy_pages:
        _need_lazy_pages(o.criu_path)

    sd = StateDir(root, container_id)
    sd.make_and_lock()
    undo: list = [sd.remove]
    cleanups: list = []
    try:
        from . import cgroups

        layout = cgroups.detect()
        cg = cgroups.manager_for(
            layout,
            linux.get("cgroupsPath"),
            container_id,
            systemd=o.systemd_cgroup,
            annotations=config.get("annotations"),
        )
        from .create import new_state, rfc3339

        state = new_state(container_id, bundle, rootfs, config, o.systemd_cgroup)
        state.cgroup = {**cg.to_dict(), "created": [d for d in cg.dirs() if not os.path.isdir(d)]}
        sd.save(state)
        cg.create()
        undo.append(lambda: _empty_and_destroy(cg))
        from .mapping import resources_with_default_devices

        cg.apply(resources_with_default_devices(linux), kernel)
        state.cgroup = cg.to_dict()
        sd.save(state)

        work_path = os.path.abspath(o.work_path or image_path)
        _mkdir(work_path, "work path")  # kept after a failure: the error names the log in it
        log_path = os.path.join(work_path, "restore.log")
        fds = [_open_dir(image_path, "image path"), _open_dir(work_path, "work path")]
        cleanups += [lambda fd=fd: os.close(fd) for fd in fds]
        criu_root = os.path.join(sd.path, "criu-root")
        os.mkdir(criu_root, 0o755)
        cleanups.append(lambda: os.rmdir(criu_root))
        kernel.mount(rootfs, criu_root, None, _MS_BIND | _MS_REC, None)
        cleanups.append(lambda: kernel.umount(criu_root, _MNT_DETACH))
        _make_mountpoints(config, rootfs, bundle)

        opts = common_opts(o, config, "restore.log")
        opts.update(
            images_dir_fd=fds[0], work_dir_fd=fds[1], root=criu_root, rst_sibling=True, evasive_devices=True
        )
        if o.lsm_profile:
            opts["lsm_profile"] = o.lsm_profile
        if o.lsm_mount_context:
            opts["lsm_mount_context"] = o.lsm_mount_context
        inherit, join, pass_fds = [], [], []
        for kind, (_name, key) in _EXT_NS.items():
            path = _ns_path(config, kind)
            if path:
                try:
                    nsfd = os.open(path, os.O_RDONLY)
                except OSError as e:
                    raise OcirtError(
                        f"namespace {path} of the config does not exist", errno=e.errno
                    ) from None
                cleanups.append(lambda fd=nsfd: os.close(fd))
                pass_fds.append(nsfd)
                inherit.append({"key": key, "fd": nsfd})
        for ns in linux.get("namespaces") or []:
            if ns.get("path") and ns.get("type") not in _EXT_NS:
                if ns["type"] == "cgroup":
                    raise OcirtError("restore cannot join an existing cgroup namespace")
                join.append({"ns": _NS_NAMES.get(ns["type"], ns["type"]), "ns_file": ns["path"]})
        for i, name in enumerate(descriptors[:3]):
            if "pipe:" in name:
                inherit.append({"key": name, "fd": i})
        if inherit:
            opts["inherit_fd"] = inherit
        if join:
            opts["join_ns"] = join
        opts["ext_mnt"] = _restore_mounts(config, bundle)
        if not o.no_subreaper and not o.detach:
            kernel.prctl(_PR_SET_CHILD_SUBREAPER, 1)

        restored = {}

        def started(pid: int) -> None:
            cg.add_pid(pid)  # CRIU makes the restored tree in the container's cgroup
            # ... the one the dump's root cgroup maps to (else, on cgroup v2, CRIU restores into
            # the dumped path: the checkpointed container's, still there during a lazy dump)
            opts["cg_root"] = _cgroup_roots(pid) if layout.kind != "v2" else _cgroup2_root(pid)

        def on_notify(script: str, pid: int, got_fds: list) -> None:
            if script == "setup-namespaces":
                from . import hooks

                hook_state = state.oci(Status.CREATING)
                hook_state["pid"] = pid
                hooks.run(config.get("hooks"), "prestart", hook_state)
                hooks.run(config.get("hooks"), "createRuntime", hook_state)
            elif script == "post-restore":
                restored["pid"] = pid
            elif script == "orphan-pts-master" and got_fds:
                _send_console(o.console_socket, got_fds[0])

        fresh_log(log_path)
        try:
            resp = criu.request(
                o.criu_path,
                {"type": criu.RESTORE, "opts": opts},
                on_notify,
                pass_fds=tuple(pass_fds),
                started=started,
                stdio_null=False,
            )
        except OcirtError as e:
            raise failure(e, "restore failed", log_path, o.criu_path) from None
        pid = (resp.get("restore") or {}).get("pid") or restored.get("pid", 0)
        if pid <= 0:
            raise OcirtError(f"restore failed: CRIU named no restored process; log file: {log_path}")
        state.pid = pid
        state.pid_start = proc_start_time(pid) or 0
        state.created = rfc3339()
        sd.save(state)
        if o.pid_file:
            from .children import write_pid_file

            write_pid_file(o.pid_file, pid)
    except BaseException:
        _run_all(reversed(cleanups))
        _run_all(reversed(undo))
        sd.unlock()
        raise
    _run_all(reversed(cleanups))
    sd.unlock()
    if o.detach:
        return 0
    from .container import wait_init

    code = wait_init(pid)
    with OpenContainer.open(root, container_id) as c:
        c.delete(force=True)
    return code


_MS_BIND, _MS_REC, _MNT_DETACH, _PR_SET_CHILD_SUBREAPER = 0x1000, 0x4000, 2, 36
_NS_NAMES = {
    "mount": "mnt",
    "network": "net",
    "uts": "uts",
    "ipc": "ipc",
    "user": "user",
    "time": "time",
    "pid": "pid",
    "cgroup": "cgroup",
}


def _run_all(steps) -> None:
    for step in steps:
        try:
            step()
        except (OSError, OcirtError):
            pass


def _empty_and_destroy(cg) -> None:
    import _signal

    try:
        if cg.pids():
            cg.kill_all(_signal.SIGKILL)
            cg.wait_empty()
    except (OSError, OcirtError):
        pass
    cg.destroy()


def _read_descriptors(image_path: str) -> list:
    try:
        with open(os.path.join(image_path, DESCRIPTORS), "rb") as f:
            names = jsonio.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise OcirtError(f"restore: {DESCRIPTORS} of the image path: {e}") from None
    return [n if isinstance(n, str) else "" for n in names] if isinstance(names, list) else []


def _restore_mounts(config: dict, bundle: str) -> list:
    ext = []
    for m in config.get("mounts") or []:
        if is_bind(m) and m.get("destination"):
            ext.append({"key": m["destination"], "val": os.path.join(bundle, m.get("source", ""))})
    if (config.get("linux") or {}).get("maskedPaths"):
        ext.append({"key": "/dev/null", "val": "/dev/null"})
    for path in _device_paths(config):
        ext.append({"key": path, "val": path})
    return ext


def _make_mountpoints(config: dict, rootfs: str, bundle: str) -> None:
    """The mount points CRIU needs in the rootfs (as create would make them), except under a
    tmpfs (CRIU restores a tmpfs with its contents) and for cgroup mounts."""
    mounts = config.get("mounts") or []
    tmpfs = [m["destination"].rstrip("/") for m in mounts if m.get("type") == "tmpfs"]
    real_root = os.path.realpath(rootfs)
    for m in mounts:
        dest = m.get("destination") or ""
        if m.get("type") == "cgroup" or any(dest.startswith(t + "/") for t in tmpfs):
            continue
        target = os.path.join(real_root, dest.lstrip("/"))
        if not os.path.realpath(os.path.dirname(target)).startswith(real_root):
            continue  # a symlink out of the rootfs: not ours to make
        if os.path.lexists(target):
            continue
        file_bind = is_bind(m) and not os.path.isdir(os.path.join(bundle, m.get("source", "")))
        try:
            if file_bind:
                os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            else:
                os.makedirs(target, 0o755, exist_ok=True)
        except OSError as e:
            raise OcirtError(f"restore: mount point {dest}: {e.strerror}", errno=e.errno) from None


def _cgroup2_root(pid: int) -> list:
    """cgroup v2: the cgroup of the criu process (now the container's), as the default root."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return [{"path": line[3:].rstrip("\n")}]
    return []


def _cgroup_roots(pid: int) -> list:
    """cgroup v1: each controller's cgroup of the criu process (now the container's), as the root
    CRIU restores into."""
    roots = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                continue
            for ctrl in ctrls.split(","):
                roots.append({"ctrl": ctrl, "path": path})
    return roots


def _send_console(path: str, master: int) -> None:
    from . import console

    console.send_master(console.connect(path), master)
