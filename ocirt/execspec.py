"""The process `exec` runs: a whole process.json, or the bundle's config.json process with the
exec options applied (runc's rules), then checked and turned into a ProcessSpec.

The command line (ocirt/commands/exec.py) fills ExecOptions from its flags, the API
(ocirt/api.py) from keyword arguments; both then make the same two calls:

    proc = process_config(opts, args, bundle)       # the process as a config dict
    spec = process_spec(proc, opts)                 # checked: labels, scheduler, ...
"""

from __future__ import annotations

from . import jsonio, paths
from .errors import ConfigError, OcirtError, go_quote
from .gonum import go_atoi
from .process import ID_MAX, NGROUPS_MAX
from .record import field, record

NO_COMMAND = "process args cannot be empty"  # runc's words
PROCESS_DOC = "process.json"  # what errors at a pointer in a whole process name (as config.json's)


@record
class ExecOptions:
    process: dict | None = None  # a whole process (process.json's content) ...
    process_file: str | None = None  # ... or the path of a process.json
    tty: bool = False
    env: list = field(default_factory=list)  # appended to config.json's process.env
    cwd: str | None = None
    uid: int | None = None
    gid: int | None = None
    additional_gids: list = field(default_factory=list)
    no_new_privileges: bool = False
    apparmor: str | None = None
    process_label: str | None = None
    caps: list = field(default_factory=list)  # added to bounding, effective and permitted
    preserve_fds: int = 0
    ignore_paused: bool = False  # exec into a paused container (the process stays frozen)
    cgroup: dict = field(default_factory=dict)  # --cgroup: {controller or "" (all): sub-cgroup path}

    @property
    def whole(self) -> bool:
        """The process is given whole (process.json), not built from config.json."""
        return self.process is not None or bool(self.process_file)


def parse_user(text: str) -> tuple:
    """--user uid[:gid] -> (uid, gid or None)."""
    uid, sep, gid = text.partition(":")
    ids = go_atoi(uid), (go_atoi(gid) if sep else None)  # "5:" is no gid (runc refuses it too)
    if ids[0] is None or (sep and ids[1] is None):  # (Atoi's digits, as runc's: not int()'s)
        raise OcirtError(f"invalid --user {text!r}: numeric uid[:gid] expected")
    for value in ids:
        if value is not None and not 0 <= value <= ID_MAX:
            raise OcirtError(f"invalid --user {text!r}: {value} is not an id: 0 to {ID_MAX}")
    return ids


def check_options(opts: ExecOptions) -> None:
    """The ids the options give (the API's as the flags'): what the kernel takes as ids."""
    for value in (opts.uid, opts.gid):
        if value is not None and (type(value) is not int or not 0 <= value <= ID_MAX):
            raise OcirtError(f"invalid --user: {value!r} is not an id: 0 to {ID_MAX}")
    if len(opts.additional_gids) > NGROUPS_MAX:
        raise OcirtError(f"invalid --additional-gids: more than {NGROUPS_MAX} groups")
    for value in opts.additional_gids:
        if type(value) is not int or not 0 <= value <= ID_MAX:
            raise OcirtError(f"invalid --additional-gids: {value!r} is not an id: 0 to {ID_MAX}")


def check_env_option(item: str) -> None:
    """One --env value: KEY=VALUE with a KEY (runc's words for the two errors)."""
    key, sep, _ = item.partition("=")
    if not sep:
        raise OcirtError(f"invalid environment variable: {go_quote(item)}")
    if not key:
        raise OcirtError(f"environment variable name can't be empty: {go_quote(item)}")


def process_config(opts: ExecOptions, args: list, bundle: str) -> dict:
    """The process to run, as a config dict: opts.process, opts.process_file's content, or
    config.json's process with args and the options applied."""
    if opts.process is not None or opts.process_file:
        if opts.process is not None:
            proc = opts.process
        else:
            proc = _read_process(opts.process_file or "")
        if not isinstance(proc, dict):
            raise ConfigError("/", "must be an object", PROCESS_DOC)
        from .validate import validate_process

        proc = dict(proc)
        validate_process(proc, PROCESS_DOC)  # the schema's process, NUL bytes: errors point into it
        return proc
    if not args:
        raise OcirtError(NO_COMMAND)
    check_options(opts)
    with open(paths.join(bundle, "config.json"), "rb") as f:
        proc = dict(jsonio.load(f).get("process") or {})
    proc["args"] = list(args)
    proc["terminal"] = opts.tty
    for item in opts.env:  # (config.json's own env was checked at create)
        check_env_option(item)
    proc["env"] = list(proc.get("env") or []) + list(opts.env)
    if opts.cwd:
        if not opts.cwd.startswith("/"):  # config.md: cwd MUST be an absolute path (runc's words)
            raise OcirtError("Cwd must be an absolute path")
        proc["cwd"] = opts.cwd
    user = dict(proc.get("user") or {})
    if opts.uid is not None:
        user["uid"] = opts.uid
    if opts.gid is not None:
        user["gid"] = opts.gid
    if opts.additional_gids:
        user["additionalGids"] = list(opts.additional_gids)
    proc["user"] = user
    if opts.no_new_privileges:
        proc["noNewPrivileges"] = True
    if opts.apparmor:
        proc["apparmorProfile"] = opts.apparmor
    if opts.process_label:
        proc["selinuxLabel"] = opts.process_label
    if opts.caps:
        caps = {k: list(v) for k, v in (proc.get("capabilities") or {}).items()}
        # Not the inheritable set (nor ambient, which needs it): a capability there survives
        # an execve of a non-root program by file capabilities (CVE-2022-29162; runc since
        # 1.1.2 adds --cap to the other three sets only).
        for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            caps.setdefault(name, [])
            if name in ("bounding", "effective", "permitted"):
                caps[name] += [c for c in opts.caps if c not in caps[name]]
        proc["capabilities"] = caps
    return proc


def _read_process(path: str):
    try:
        return jsonio.load_path(path)
    except OSError as e:
        raise OcirtError(f"open {path}", e.errno) from None
    except ValueError as e:
        raise OcirtError(f"{path}: invalid JSON: {e}") from None


def process_spec(proc: dict, opts: ExecOptions):
    """The checked ProcessSpec of `proc` (from process_config with the same opts); errors name
    the field in process.json or in config.json's /process."""
    from .lsm import check_process
    from .process import ProcessSpec

    if opts.whole:
        if not proc.get("args"):
            raise ConfigError("/args", "is required", PROCESS_DOC)
        check_process(proc, where="", document=PROCESS_DOC)
        spec = ProcessSpec.from_config(proc, opts.preserve_fds, pointer="", document=PROCESS_DOC)
    else:
        if not proc.get("args"):
            raise OcirtError(NO_COMMAND)
        try:
            check_process(proc, where="/process")
        except ConfigError as e:  # a label the flag gave, not config.json: the flag named
            flag = {"/process/apparmorProfile": "--apparmor", "/process/selinuxLabel": "--process-label"}
            if e.pointer in flag and (opts.apparmor if "apparmor" in e.pointer else opts.process_label):
                raise OcirtError(f"{flag[e.pointer]}: {e.rule}") from None
            raise
        spec = ProcessSpec.from_config(proc, opts.preserve_fds)
    spec.check()
    return spec
