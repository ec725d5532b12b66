from __future__ import annotations

import posix  # not os: see ocirt/paths.py

from ..cli import PRESERVE_FDS, Opt, UsageError, fd_count, need_id
from ..errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..attach_window import Window
    from ..execspec import ExecOptions

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
    PRESERVE_FDS,
    Opt("ignore-paused", help="allow exec in a paused container"),
    Opt("cgroup", value=True, multi=True, help="run the process in an (existing) sub-cgroup"),
)


EXEC_FAILED = 255  # runc's status for exec's own failures; 1 is the process's


def exec_options(o: dict, args: list) -> ExecOptions:
    """The flags as ExecOptions (ocirt/execspec.py); what is wrong in them, a usage error."""
    from ..execspec import NO_COMMAND, ExecOptions, parse_user

    if not o["process"] and not args:
        raise UsageError(NO_COMMAND)
    uid = gid = None
    if o["user"]:
        try:
            uid, gid = parse_user(o["user"])
        except OcirtError as e:
            raise UsageError(e.message) from None
    gids = additional_gids(o["additional_gids"])
    try:
        cgroup = parse_cgroup_option(o["cgroup"])
    except OcirtError as e:
        raise UsageError(e.message) from None
    return ExecOptions(
        process_file=o["process"] or None,
        tty=o["tty"],
        env=o["env"],
        cwd=o["cwd"] or None,
        uid=uid,
        gid=gid,
        additional_gids=gids,
        no_new_privileges=o["no_new_privs"],
        apparmor=o["apparmor"] or None,
        process_label=o["process_label"] or None,
        caps=o["cap"],
        preserve_fds=o["preserve_fds"],
        ignore_paused=o["ignore_paused"],
        cgroup=cgroup,
    )


def additional_gids(values: list) -> list:
    """--additional-gids values as runc's flag parser takes them (decimal int64s, a sign
    allowed: strconv.ParseInt(v, 10, 64)); what it refuses, a usage error in its words (exit 1,
    before anything else is looked at). The range of ids is checked later (execspec)."""
    gids = []
    for value in values:
        if isinstance(value, int):
            gids.append(value)
            continue
        digits = value[1:] if value[:1] in ("+", "-") else value
        why = "invalid syntax"
        if digits.isascii() and digits.isdigit():
            gid = int(value)
            if -(2**63) <= gid < 2**63:
                gids.append(gid)
                continue
            why = "value out of range"
        raise UsageError(
            f'invalid value "{value}" for flag -additional-gids: strconv.ParseInt: parsing "{value}": {why}'
        )
    return gids


def main(g, o, args) -> int:
    o["additional_gids"] = additional_gids(o["additional_gids"])  # a flag's error first, as runc's
    container_id = need_id(args, "exec")
    fd_count(o)
    from ..signals import no_inherited_signal_state

    no_inherited_signal_state()  # (the process is this command's child: as create's init)
    window = g.attach_window()
    try:
        return run_exec(g, o, args, container_id, window)
    except OcirtError as e:
        e.message = f"exec failed: {e.message}"
        e.exit_code = EXEC_FAILED
        raise
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        error = OcirtError(f"exec failed: {e.strerror or e}{where}")
        error.exit_code = EXEC_FAILED
        raise error from None


def ignored_capabilities(opts, proc: dict) -> str:
    """The warning for the capabilities left out, names the kernel has no number for (create's
    too, for config.json's): one line, as runc's; "" for none."""
    if opts.caps:
        from ..capabilities import NUMBERS

        unknown_caps = [f"--cap {name!r}" for name in opts.caps if name not in NUMBERS]
        return f"{', '.join(unknown_caps)}: unknown capability ignored" if unknown_caps else ""
    if opts.whole and proc.get("capabilities"):  # the same of a process.json's (runc warns)
        from ..capabilities import unknown
        from ..execspec import PROCESS_DOC

        return "; ".join(
            f"{PROCESS_DOC}: {line.removeprefix('/process')}" for line in unknown(proc["capabilities"])
        )
    return ""


def run_exec(g, o, args, container_id: str, window: Window | None = None) -> int:
    import _signal as signal  # the C module: no enum import

    from ..container import OpenContainer, wait_init
    from ..execspec import process_config, process_spec
    from ..execute import exec_process
    from ..state import Status

    debug = g.log.debugger
    listener = socket_path = host = master = None
    # Every signal this process can catch goes on to the process, as runc's foreground exec
    # does (SIGALRM, SIGPIPE, SIGTSTP, SIGCONT, real-time ones, ...: not killing or stopping
    # this process, which would leave the process without its waiter), but SIGCHLD, SIGWINCH
    # (a terminal's resize, below) and SIGURG (runc: Go's own); one that comes before the
    # process runs is kept for it (runc's handler, too, is made before the process).
    from ..signals import STOP_SIGNALS, Relay

    relay = held = None
    if not o["detach"]:
        relay = Relay()
    else:
        # the signals that stop a command (a ^C, an engine's timeout) held while exec works,
        # then the exec is cancelled (its process killed, its pid file removed) and fails as
        # any exec does: they ended it at once (SIGINT: at the next Python line), and a process
        # already started was left running while exec failed
        held = Relay(only=STOP_SIGNALS)
    try:
        opts = exec_options(o, args[1:])
        if o["pid_file"]:
            from ..children import check_pid_file

            check_pid_file(o["pid_file"])
        with OpenContainer.open(g.root, container_id) as c:
            proc = process_config(opts, args[1:], c.state.bundle)
            if c.status() is Status.PAUSED:
                if not opts.ignore_paused:
                    raise OcirtError("cannot exec in a paused container (use --ignore-paused to override)")
                c.sd.unlock()  # the process waits frozen for `resume`, which takes the lock
            # --cgroup: refused here if it leaves the container's cgroup or does not exist
            sub = c.cgroup().sub(opts.cgroup) if opts.cgroup else None
            if debug and sub is not None:
                debug(f"exec: into sub-cgroup {sub.dirs()}")
            spec = process_spec(proc, opts)
            warning = ignored_capabilities(opts, proc)  # said once the process is started
            terminal = bool(proc.get("terminal"))
            from ..checks import CONSOLE_UNUSED, check_preserved_fds

            if o["console_socket"] and not (terminal and o["detach"]):
                raise OcirtError(CONSOLE_UNUSED)
            check_preserved_fds(opts.preserve_fds)
            socket_path = o["console_socket"] if terminal else None
            if terminal and not socket_path:
                if o["detach"]:
                    raise OcirtError("cannot allocate tty if runc will detach without setting console socket")
                # in the foreground, as runc: we hold the pty and relay it, and it has our
                # terminal's size from the start
                from .. import console  # a terminal only (fcntl, struct); used below with `listener`

                listener, socket_path = console.listener()
                host = console.host_terminal()
                if proc.get("consoleSize") is None:
                    proc["consoleSize"] = console.size_of(host)
            if debug:
                debug(
                    f"exec: {spec.args} in container {container_id} (init pid {c.state.pid}),"
                    f" uid {spec.uid} gid {spec.gid}, terminal {terminal}"
                )
            pid = exec_process(
                c,
                spec,
                g.kernel(),
                pid_file=o["pid_file"],
                subreaper=not o["detach"],
                console_socket=socket_path,
                console_size=proc.get("consoleSize"),
                cgroup=sub,
                ignore_paused=opts.ignore_paused,
                window=window,
                as_child=True,  # (the command ends, or waits for it)
            )
        if debug:
            debug(f"exec: process started, pid {pid}")
        if warning:  # (not before an error that ends exec: one line, as runc's)
            g.log.warning(warning)
        if held is not None:
            if held.pending:  # the process was started all the same: cancelled
                from ..children import kill_and_reap

                kill_and_reap(pid)
                if o["pid_file"]:
                    try:
                        posix.unlink(o["pid_file"])
                    except OSError:
                        pass
                raise OcirtError(f"interrupted by signal {held.pending[0]}: the process was killed")
            return 0
        try:
            if relay is not None:
                relay.to(pid)
            if listener is not None:
                master = console.receive_master(listener)
                signal.signal(signal.SIGWINCH, lambda s, f: console.resize(master, host))
                console.proxy(master, host)
            code = wait_init(pid, relay)
        except BaseException:
            # The process cannot be waited for as exec must (its terminal's output cannot be
            # written: a stdout at /dev/full, a reader gone): it goes, as the process of any
            # exec that failed (runc's rule: none is left behind without its waiter); it was
            # left running in the container, no one to wait for it or to read its output.
            from ..children import kill_and_reap

            kill_and_reap(pid)
            raise
        if debug:
            debug(f"exec: process {pid} exited with {code}")
        return code
    finally:
        if master is not None:
            posix.close(master)
        if listener is not None and socket_path is not None:
            console.close(listener, socket_path)
            console.close_host_terminal(host)
        if relay is not None:
            # Python's own two ignored again (the process was waited for, or exec failed: none
            # to pass them on to): caught, they are set back to their default actions at the
            # interpreter's exit, and a write of its then (an error on a stderr file beyond a
            # caller's RLIMIT_FSIZE: exec --pid-file under RLIMIT_FSIZE 0) killed this command
            # with SIGXFSZ instead of ending it with its status.
            from ..signals import PYTHON_IGNORES

            for sig in PYTHON_IGNORES:
                signal.signal(sig, signal.SIG_IGN)


def parse_cgroup_option(values: list) -> dict:
    """--cgroup [<controller>[,<controller>...]:]<path>, repeatable (runc's format) ->
    {controller: path}, "" for every controller."""
    out = {}
    for value in values:
        controllers, sep, path = value.partition(":")
        if not sep:
            controllers, path = "", controllers
        if not path:
            raise OcirtError(f"invalid --cgroup argument: {value}")
        for controller in controllers.split(","):
            if (sep and not controller) or controller in out:
                raise OcirtError(f"invalid --cgroup argument: {value}")
            out[controller] = path
    return out
