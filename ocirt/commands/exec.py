import os
import signal

from .. import jsonio
from ..cli import Opt, UsageError, int_option, need_id
from ..container import Container, wait_init
from ..errors import OcirtError
from ..process import ProcessSpec

USAGE = "exec [command options] <container-id> <command> [command options]  || -p process.json <container-id>"
STOP_AT_ARGS = True
OPTIONS = (
    Opt("console-socket", value=True, help="path to an AF_UNIX socket which will receive the pty master"),
    Opt("cwd", value=True, help="current working directory in the container"),
    Opt("env", "e", value=True, multi=True, help="set environment variables"),
    Opt("tty", "t", help="allocate a pseudo-TTY"),
    Opt("user", "u", value=True, help="UID (format: <uid>[:<gid>])"),
    Opt("additional-gids", "g", value=True, multi=True, help="additional gids"),
    Opt("process", "p", value=True, help="path to the process.json"),
    Opt("detach", "d", help="detach from the container's process"),
    Opt("pid-file", value=True, help="specify the file to write the process id to"),
    Opt("process-label", value=True, help="set the asm process label for the process"),
    Opt("apparmor", value=True, help="set the apparmor profile for the process"),
    Opt("no-new-privs", help="set the no new privileges value for the process"),
    Opt("cap", "c", value=True, multi=True, help="add a capability to the bounding set for the process"),
    Opt("preserve-fds", value=True, default="0", help="pass N additional file descriptors to the container"),
    Opt("ignore-paused", help="allow exec in a paused container"),
    Opt("cgroup", value=True, multi=True, help="run the process in an (existing) sub-cgroup"),
)


def build_process(o: dict, args: list[str], bundle: str) -> dict:
    """The process to run: --process FILE, or config.json's process with the flags applied."""
    if o["process"]:
        try:
            with open(o["process"]) as f:
                proc = jsonio.load(f)
        except (OSError, ValueError) as e:
            raise OcirtError(f"process.json: {e}") from None
        from ..validate import validate_process
        validate_process(proc)
        return proc
    if not args:
        raise UsageError("exec: no command given (args must not be empty)")
    with open(os.path.join(bundle, "config.json")) as f:
        proc = dict(jsonio.load(f).get("process") or {})
    proc["args"] = args
    proc["terminal"] = o["tty"]
    proc["env"] = list(proc.get("env") or []) + o["env"]
    if o["cwd"]:
        proc["cwd"] = o["cwd"]
    user = dict(proc.get("user") or {})
    if o["user"]:
        uid, _, gid = o["user"].partition(":")
        try:
            user["uid"] = int(uid)
            if gid:
                user["gid"] = int(gid)
        except ValueError:
            raise UsageError(f"invalid --user {o['user']!r}: numeric uid[:gid] expected") from None
    if o["additional_gids"]:
        user["additionalGids"] = [int(g) for g in o["additional_gids"]]
    proc["user"] = user
    if o["no_new_privs"]:
        proc["noNewPrivileges"] = True
    if o["apparmor"]:
        proc["apparmorProfile"] = o["apparmor"]
    if o["process_label"]:
        proc["selinuxLabel"] = o["process_label"]
    if o["cap"]:
        caps = {k: list(v) for k, v in (proc.get("capabilities") or {}).items()}
        for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            caps.setdefault(name, [])
            if name != "ambient":
                caps[name] += [c for c in o["cap"] if c not in caps[name]]
        proc["capabilities"] = caps
    return proc


def main(g, o, args) -> int:
    container_id = need_id(args, "exec")
    c = Container.open(g.root, container_id)
    try:
        proc = build_process(o, args[1:], c.state.bundle)
        if proc.get("terminal") and not o["console_socket"]:
            raise OcirtError("cannot allocate tty if runc will detach without setting console socket")
        if not proc.get("args"):
            raise OcirtError("process.json: /args: is required")
        from ..lsm import check_process
        if o["process"]:
            check_process(proc, where="", document="process.json")
        else:
            check_process(proc, where="/process")
        if o["process"]:
            spec = ProcessSpec.from_config(proc, int_option(o, "preserve_fds"), pointer="",
                                           document="process.json")
        else:
            spec = ProcessSpec.from_config(proc, int_option(o, "preserve_fds"))
        terminal = bool(proc.get("terminal"))
        pid = c.exec(spec, g.kernel(), pid_file=o["pid_file"], subreaper=not o["detach"],
                     console_socket=o["console_socket"] if terminal else None,
                     console_size=proc.get("consoleSize"))
    finally:
        c.close()
    if o["detach"]:
        return 0
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2):
        signal.signal(sig, lambda s, f: _forward(pid, s))
    return wait_init(pid)


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
