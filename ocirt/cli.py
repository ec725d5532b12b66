"""The command line, runc's: global flags, then one command from ocirt/commands/.

A small parser of its own, not click: `ocirt state` must not pay for importing click (tens of ms).
Flags follow Go's conventions as runc users type them: --flag value, --flag=value, -flag value,
short aliases (-b), and booleans (--detach, -d, --detach=false).
"""

import posix  # not os: see bin/ocirt ("posix")
import sys

from . import SPEC_VERSION, __version__, defaults
from .defaults import default_root
from .errors import OcirtError, errno_text
from .log import Logger
from .record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .attach_window import Window

# name -> one-line help; the module ocirt.commands.<name> implements it
COMMANDS = {
    "create": "create a container",
    "start": "executes the user defined process in a created container",
    "state": "output the state of a container",
    "kill": "kill sends the specified signal (default: SIGTERM) to the container's init process",
    "delete": "delete any resources held by the container often used with detached container",
    "run": "create and run a container",
    "list": "lists containers started by ocirt with the given root",
    "spec": "create a new specification file",
    "features": "show the enabled features",
    "ps": "ps displays the processes running inside a container",
    "pause": "pause suspends all processes inside the container",
    "resume": "resumes all processes that have been previously paused",
    "update": "update container resource constraints",
    "events": "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
    "exec": "execute new process inside the container",
    "plan": "print every kernel operation the bundle maps to (nothing is done)",
    "check": "list every problem of the bundle's config.json and what this host lacks for it",
    "checkpoint": "checkpoint a running container",
    "restore": "restore a container from a previous checkpoint",
}
ALIASES = {"ps": "ps", "del": "delete", "rm": "delete"}


@record
class Opt:
    name: str
    short: str = ""
    value: bool = False  # takes a value (else a boolean)
    default: object = None
    help: str = ""
    multi: bool = False  # may repeat; collected in a list
    number: bool = False  # a Go int flag: go_int() at parse time, as urfave/cli does

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")


# create's, run's and exec's
PRESERVE_FDS = Opt(
    "preserve-fds",
    value=True,
    default=0,
    number=True,
    help="pass N additional file descriptors to the container",
)

GLOBAL_OPTIONS = (
    Opt(
        "root",
        value=True,
        default=None,  # None: not given; "" is refused
        help="root directory for storage of container state "
        "(default: /run/ocirt, or $XDG_RUNTIME_DIR/ocirt when not root)",
    ),
    Opt("log", value=True, default="", help="set the log file to write ocirt logs to (default is stderr)"),
    Opt("log-format", value=True, default="text", help="set the log format ('text' (default), or 'json')"),
    Opt("debug", help="enable debug logging"),
    Opt("systemd-cgroup", help="enable systemd cgroup support"),
    Opt("rootless", value=True, default="auto", help="ignore cgroup permission errors"),
    Opt("criu", value=True, default="criu", help="path to the criu binary used for checkpoint and restore"),
    Opt("version", "v", help="print the version"),
    Opt("help", "h", help="show help"),
)


# Go's strconv.ParseBool
BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
BOOLS.update(dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False))

# runc's checkArgs of each command: (minimum, maximum), None for no maximum
ARG_COUNTS = {
    "create": (1, 1),
    "start": (1, 1),
    "state": (1, 1),
    "kill": (1, 2),
    "delete": (1, 1),
    "run": (1, 1),
    "list": (0, 0),
    "spec": (0, 0),
    "features": (0, 0),
    "ps": (1, None),
    "pause": (1, 1),
    "resume": (1, 1),
    "update": (1, 1),
    "events": (1, 1),
    "exec": (1, None),
    "checkpoint": (1, 1),
    "restore": (1, 1),
}


def rootless_mode(value: str) -> bool:
    """--rootless true|false|auto (ocirt/defaults.py); a value it does not take, a usage error."""
    try:
        return defaults.rootless_mode(value)
    except OcirtError as e:
        raise UsageError(e.message) from None


@record
class Globals:
    root: str
    log: Logger
    systemd_cgroup: bool = False
    debug: bool = False
    rootless: str = "auto"  # --rootless as given: rootless_mode() decides where it matters
    criu: str = "criu"  # --criu: the criu binary checkpoint and restore run
    window: "Window | None" = None  # an attach_window.Window the launcher started, for create/run/exec

    def attach_window(self) -> "Window | None":
        """The cgroup attach window of create, run and exec: the launcher's, or one opened now.
        For a systemd-managed cgroup only (joined by a move); with cgroupfs their child gets
        into its cgroup by itself, none is wanted, and the module is not even loaded."""
        if self.window is None and self.systemd_cgroup:
            from .attach_window import start

            self.window = start()
        return self.window

    def kernel(self):
        from .kernel.linux import LinuxKernel

        return LinuxKernel()


class UsageError(OcirtError):
    pass


def parse(options, argv: list[str], stop_at_positional: bool) -> tuple[dict, list[str]]:
    """Parse `argv` against `options`; returns ({key: value}, positional args)."""
    by_name = {}
    for o in options:
        by_name[o.name] = o
        if o.short:
            by_name[o.short] = o
    values = {o.key: ([] if o.multi else o.default) for o in options}
    for o in options:
        if not o.value and not o.multi:
            values[o.key] = False
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            if stop_at_positional:
                positional.extend(argv[i:])
                break
            continue
        body = arg[2:] if arg.startswith("--") else arg[1:]  # one or two dashes, as Go's flags
        name, eq, inline = body.partition("=")
        opt = by_name.get(name)
        if opt is None and positional:  # after an argument, only the command's own flags are
            positional.append(arg)  # flags (runc's CLI moves those alone to the front): `kill
            continue  # ID -9` is a signal, as runc reads it
        if not body or body[0] in "-=":
            raise UsageError(f"bad flag syntax: {arg}")
        if opt is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if opt.value:
            if eq:
                val = inline
            elif i < len(argv):
                val = argv[i]
                i += 1
            else:
                raise UsageError(f"flag needs an argument: -{name}")
            parsed: object = go_int(opt.name, val) if opt.number else val
            if opt.multi:
                values[opt.key].append(parsed)
            else:
                values[opt.key] = parsed
        elif not eq:
            values[opt.key] = True
        elif inline in BOOLS:
            values[opt.key] = BOOLS[inline]
        else:
            raise UsageError(f'invalid boolean value "{inline}" for -{name}: parse error')
    return values, positional


INT64_MAX = (1 << 63) - 1  # (gonum.INT64_MAX too: not imported for a constant on every command's way)


def go_int(flag: str, text: str) -> int:
    """A Go int flag's value: strconv.ParseInt(text, 0, 64) (0x, 0o, 0b, a leading 0 for octal,
    _ between digits); a usage error with Go's words otherwise."""
    body = text[1:] if text[:1] in ("+", "-") else text
    value = None
    if body.isascii() and body[:1].isdigit() and body == body.strip():
        try:
            if len(body) > 1 and body[0] == "0" and body[1] in "0123456789_":
                value = int(body, 8)  # Go: a leading 0 means octal
            else:
                value = int(body, 0)
        except ValueError:
            pass
    if value is None:
        raise UsageError(f'invalid value "{text}" for flag -{flag}: parse error')
    value = -value if text[0] == "-" else value
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise UsageError(f'invalid value "{text}" for flag -{flag}: value out of range')
    return value


def fd_count(values: dict) -> int:
    """--preserve-fds N as a count: not below 0 (runc takes it, and passes nothing)."""
    n = values["preserve_fds"]
    if n < 0:
        raise UsageError(f'invalid value "{n}" for flag -preserve-fds: a count of fds, not negative')
    return n


def check_arg_count(name: str, args: list[str]) -> None:
    """runc's checkArgs: the number of arguments a command takes (ARG_COUNTS)."""
    low, high = ARG_COUNTS.get(name, (0, None))
    if low == high and len(args) != low:
        raise UsageError(f'ocirt: "{name}" requires exactly {low} argument(s)')
    if len(args) < low:
        raise UsageError(f'ocirt: "{name}" requires a minimum of {low} argument(s)')
    if high is not None and len(args) > high:
        raise UsageError(f'ocirt: "{name}" requires a maximum of {high} argument(s)')


def version_text() -> str:
    return f"ocirt version {__version__}\nspec: {SPEC_VERSION}\npython: {sys.version.split()[0]}\n"


def help_text(name: str | None = None, module=None) -> str:
    if name is None or module is None:
        lines = [
            "NAME:",
            "   ocirt - Open Container Initiative runtime",
            "",
            "USAGE:",
            "   ocirt [global options] command [command options] [arguments...]",
            "",
            "COMMANDS:",
        ]
        lines += [f"   {n:<10} {h}" for n, h in COMMANDS.items()]
        lines += ["", "GLOBAL OPTIONS:"]
        lines += [_opt_line(o) for o in GLOBAL_OPTIONS]
        return "\n".join(lines) + "\n"
    lines = ["NAME:", f"   ocirt {name} - {COMMANDS[name]}", "", "USAGE:", f"   ocirt {module.USAGE}", ""]
    if module.OPTIONS:
        lines.append("OPTIONS:")
        lines += [_opt_line(o) for o in module.OPTIONS]
    return "\n".join(lines) + "\n"


def _opt_line(o: Opt) -> str:
    flags = f"--{o.name}" + (f", -{o.short}" if o.short else "") + (" value" if o.value else "")
    default = f" (default: {o.default!r})" if o.value and o.default not in (None, "") else ""
    return f"   {flags:<28} {o.help}{default}"


def main(argv: list[str] | None = None, window: "Window | None" = None) -> int:
    """`window`: ocirt/attach_window.py's warm-up, when the launcher (bin/ocirt) started one
    before importing this module; create, run and exec start their own otherwise."""
    argv = sys.argv[1:] if argv is None else argv
    log = Logger()
    try:
        try:
            g_values, rest = parse(GLOBAL_OPTIONS, argv, stop_at_positional=True)
        except UsageError as e:
            incorrect_usage(f". {e}", help_text())
            raise
        log_format = g_values["log_format"] or "text"  # runc: "" is text
        if log_format not in ("text", "json"):  # told on stderr, no --log FILE made
            raise UsageError(f"invalid log-format: {log_format}")
        log = Logger(g_values["log"] or None, log_format, g_values["debug"])
        log.open()  # runc creates --log FILE at once, whatever is logged later
        rootless = g_values["rootless"]
        if rootless.lower() in ("", "auto"):  # runc's parseBoolOrAuto, checked for every command
            rootless = "auto"
        elif rootless in BOOLS:
            rootless = "true" if BOOLS[rootless] else "false"
        else:
            raise UsageError(f'invalid value "{rootless}" for flag --rootless: expected true, false or auto')
        if g_values["root"] == "":
            raise UsageError('invalid value "" for flag --root: an empty path')
        if g_values["root"] and g_values["root"][0] != "/":  # absolute from here on, as runc's
            try:
                g_values["root"] = f"{posix.getcwd()}/{g_values['root']}"
            except OSError as e:
                raise UsageError(
                    f"--root {g_values['root']}: a relative path, and the current directory is gone: "
                    f"{errno_text(e)}"
                ) from None
        if g_values["version"]:
            sys.stdout.write(version_text())
            return 0
        if g_values["help"] or not rest or (rest[0] == "help" and len(rest) == 1):
            sys.stdout.write(help_text())
            return 0
        topic = rest[1] if rest[0] == "help" else rest[0]  # `help CMD`: that command's help
        name = ALIASES.get(topic, topic)
        if name not in COMMANDS:
            raise no_help_topic(topic)
        if rest[0] == "help":
            __import__(f"ocirt.commands.{name}")
            sys.stdout.write(help_text(name, sys.modules[f"ocirt.commands.{name}"]))
            return 0
        from .commands import without_gc  # the package the command's module is in

        with without_gc():  # no cyclic GC for the command, its imports included
            __import__(f"ocirt.commands.{name}")  # not importlib: it imports warnings (~0.5 ms)
            module = sys.modules[f"ocirt.commands.{name}"]
            help_opt = (Opt("help", "h"),)
            try:
                values, args = parse(
                    tuple(module.OPTIONS) + help_opt,
                    rest[1:],
                    stop_at_positional=getattr(module, "STOP_AT_ARGS", False),
                )
            except UsageError as e:
                incorrect_usage(f": {e}", help_text(name, module))
                raise
            if values.pop("help"):
                sys.stdout.write(help_text(name, module))
                return 0
            try:
                check_arg_count(name, args)
            except UsageError:
                incorrect_usage(".", help_text(name, module))
                raise
            g = Globals(
                root=g_values["root"] or default_root(),  # None: not given
                log=log,
                systemd_cgroup=g_values["systemd_cgroup"],
                debug=g_values["debug"],
                rootless=rootless,
                criu=g_values["criu"],
                window=window,
            )
            log.debug(f"ocirt {__version__}: {name} {' '.join(rest[1:])}, root {g.root}")
            return module.main(g, values, args) or 0
    except OcirtError as e:
        log.error(str(e), told=e.told)
        return getattr(e, "exit_code", 1)  # a command may set its own (exec: 255, as runc)
    except OSError as e:  # one line, not a traceback, for what no handler foresaw: as Go's
        log.error(f"{e.filename}: {errno_text(e)}" if e.filename else errno_text(e))
        return 1
    except KeyboardInterrupt as e:  # a ^C, or signals.Stopped
        return 128 + getattr(e, "signum", 2)
    except MemoryError:  # a caller's RLIMIT_AS or RLIMIT_DATA: said without allocating much
        try:
            log.error("out of memory")
        except MemoryError:
            posix.write(2, b"ocirt: out of memory\n")
        return 1
    except Exception as e:  # noqa: BLE001 - a last resort: a bug, still told in one line
        log.error(f"internal error: {type(e).__name__}: {' '.join(str(e).split())}")
        return 1


def incorrect_usage(what: str, help: str) -> None:
    """A flag or the arguments a command cannot take: runc's words and the help it prints on
    stdout with them ("Incorrect Usage." or ".. Usage: <flag error>"), the error line itself
    going to stderr as any error's. Never fails the command's own failure (a closed stdout)."""
    try:
        sys.stdout.write(f"Incorrect Usage{what}\n\n{help}")
    except (OSError, ValueError):
        pass


def no_help_topic(topic: str) -> UsageError:
    """An unknown command, or `help` of one: runc's words and its exit status, 3."""
    e = UsageError(f"No help topic for '{topic}'")
    e.exit_code = 3
    return e


def need_id(args: list[str], command: str, count: int = 1) -> str:
    if len(args) < count:
        raise UsageError(f'ocirt: "{command}" requires a minimum of {count} argument(s)')
    return args[0]


def exact_id(args: list[str], command: str) -> str:
    """runc's checkArgs(ctx, 1, exactArgs)."""
    if len(args) != 1:
        raise UsageError(f'ocirt: "{command}" requires exactly 1 argument(s)')
    return args[0]
