import _signal  # not signal: it imports enum (run is on the benchmark's hot path)
import posix  # not os: see ocirt/paths.py

from ..cli import Opt, fd_count, need_id
from . import create as create_cmd

USAGE = "run [command options] <container-id>"
OPTIONS = create_cmd.OPTIONS + (
    Opt("detach", "d", help="detach from the container's process"),
    Opt("keep", help="do not delete the container after it exits"),
    # runc's flag, accepted for engines that pass it. ocirt's init is not always its direct child
    # (with a user namespace stage 1 forks it and exits), so ocirt stays a subreaper anyway: that
    # is how it gets the exit status.
    Opt(
        "no-subreaper",
        help="accepted for runc compatibility; ocirt needs the subreaper to reap the container's init",
    ),
)

# Every signal this process can catch goes on to the container's process, as runc's foreground
# run does (SIGALRM, SIGTSTP, SIGCONT, real-time ones, ...: not killing or stopping this
# process, which would leave the container without its waiter), but SIGCHLD, SIGWINCH (a
# terminal's resize), SIGURG (runc: Go's own), SIGPIPE and SIGXFSZ: this process's own writes
# raise them (a hook that does not read the state on its stdin, a closed stderr; a caller's
# RLIMIT_FSIZE that its state.json, its pid file or its stderr file goes beyond); they stay
# ignored (an EPIPE or EFBIG error), where runc would pass such a SIGPIPE on and kill the
# container's process. (A caught SIGXFSZ was also set back to its default action at Python's
# exit, and the last flush of a stderr file at its limit killed run with it.)
NOT_FORWARDED = (_signal.SIGPIPE, _signal.SIGXFSZ)  # and signals.UNRELAYED


def main(g, o, args) -> int:
    from ..errors import OcirtError

    container_id = need_id(args, "run")
    fd_count(o)
    create_cmd.no_inherited_signal_state()
    if o["detach"]:  # (in the foreground they are kept for the container's process: Relay)
        create_cmd.stop_like_interrupt()
    if o["console_socket"] and not o["detach"]:  # (without a terminal: check_config)
        from ..checks import CONSOLE_UNUSED

        raise OcirtError(f"ocirt run failed: {CONSOLE_UNUSED}")
    window = g.attach_window()
    from ..container import OpenContainer, start_created, wait_init
    from ..create import create

    detach = o["detach"]
    listener = host = notify = None
    if posix.environ.get(b"NOTIFY_SOCKET"):  # its socket reached before anything is made
        from ..sdnotify import Notify, environ

        try:
            notify = Notify.connect(environ(b"NOTIFY_SOCKET"))
        except OcirtError as e:
            e.message = f"ocirt run failed: {e.message}"
            raise
    if not detach and not o["console_socket"] and create_cmd.wants_terminal(o["bundle"]):
        from .. import console

        listener, o["console_socket"] = console.listener()  # runc run -t: we hold the pty
    opts = create_cmd.options_from(g, o, container_id, subreaper=not detach)
    fx = create_cmd.host_effects(window, opts)  # its cgroup layout serves start and delete too
    from ..signals import Relay

    # from now on a signal is kept for the container's process (not detached: it is passed on)
    relay = None if detach else Relay(NOT_FORWARDED)
    pid = 0
    try:
        try:  # created and started: an error of either is run's
            sd, state = create(opts, g.kernel(), fx)
            pid = state.pid
            g.log.debug(f"run: container {container_id} created, init pid {pid}")
            master = None

            def before_start():
                nonlocal master, host
                if notify is not None:
                    notify.bind(sd.path)  # before the process runs: it may notify at once
                if listener is not None:
                    master = console.receive_master(listener)
                    host = console.host_terminal()
                    console.resize(master, host)  # our terminal's size before the process runs
                if not detach and master is not None:
                    _signal.signal(_signal.SIGWINCH, lambda s, f: console.resize(master, host))

            # (run -d returns once the init executes the program, as runc's: an execve that
            # then fails leaves the container stopped, not run's error)
            start_created(sd, state, before_start, fx.layout, keep=o["keep"], until_executed=not detach)
        except BaseException as e:
            if pid:
                reap_if_gone(pid)
            run_failed(e)
            raise
        if detach:
            if notify is not None:  # systemd's MAINPID: the container's, we are gone
                notify.wait_and_forward(pid, state.pid_start, pid)
            return 0
        if notify is not None:  # MAINPID: ours, which lives as long as the container
            notify.forward_in_background(posix.getpid())
        if relay is not None:  # (after start: before, a signal would reach the waiting init)
            relay.to(pid)
        try:
            if master is not None:
                console.proxy(master, host)
                posix.close(master)
            code = wait_init(pid, relay)
        except BaseException as e:  # (its output cannot be written: EPIPE) the container goes
            stop_started(g.root, container_id, fx.layout, pid, keep=o["keep"] and isinstance(e, OcirtError))
            run_failed(e)
            raise
        g.log.debug(f"run: container {container_id} exited with {code}")
    finally:
        if listener is not None:
            console.close(listener, o["console_socket"])
            console.close_host_terminal(host)
    if not o["keep"]:
        with OpenContainer.open(g.root, container_id, layout=fx.layout) as c:
            c.delete(force=True)
    return code


def stop_started(root: str, container_id: str, layout, pid: int, keep: bool = False) -> None:
    """A foreground run that cannot go on with the container it started (its output cannot be
    written): the init killed and reaped (this process is its subreaper), and the container
    deleted, or with `keep` (run --keep) left stopped; as a failed start, nothing is left
    running without its waiter."""
    from ..container import OpenContainer, wait_init
    from ..errors import OcirtError

    try:
        posix.kill(pid, _signal.SIGKILL)  # (not reaped yet: the pid is still the init's)
    except ProcessLookupError:
        pass
    wait_init(pid)
    if keep:
        return
    try:
        with OpenContainer.open(root, container_id, layout=layout) as c:
            c.delete(force=True)
    except OcirtError:
        pass


def reap_if_gone(pid: int) -> None:
    """A start that failed stopped the init (start_created): where it is this process's child
    (one fork, or the subreaper's), it is reaped before run ends, not left a zombie to the
    host's reaper (which may not reap: a pids limit above the container keeps counting it
    until then). Not waited for where it still runs (run --keep of a container whose start
    never let the init go)."""
    try:
        posix.waitpid(pid, posix.WNOHANG)
    except (ChildProcessError, InterruptedError):
        pass


def run_failed(e: BaseException) -> None:
    """run's error, once, in runc's words: "ocirt run failed: ..." (a ^C stays what it is).
    One the init said on its stderr, which is run's (or run's terminal), goes into --log FILE
    only: on stderr it is the init's line alone, as runc's."""
    from ..container import InitSaid
    from ..errors import OcirtError

    if isinstance(e, OcirtError):
        e.message = f"ocirt run failed: {e.message}"
        e.told = isinstance(e, InitSaid)
