"""Man pages and shell completion, made from the one definition of the command line.

The commands, their one-line help and aliases come from ocirt/cli.py (COMMANDS, ALIASES,
GLOBAL_OPTIONS); each command's synopsis and flags from its module in ocirt/commands/ (USAGE,
OPTIONS, STOP_AT_ARGS). Nothing here is a second list of commands or flags: a flag added to a
command shows up in its man page and in both completions the next time they are generated.

    python -m ocirt.manual --man DIR --bash FILE --zsh FILE    # write what is asked for
    python -m ocirt.manual --install [--prefix /usr/local]     # man pages and completions where
                                                              # man, bash-completion and zsh look

Not imported by the runtime itself (only by this command and by tests).
"""

from __future__ import annotations

import importlib
import os
import sys

from . import __version__, cli

SECTION = "8"

# What the value of a flag is, for completion (keyed by the flag's long name; a (command, name)
# key wins). These are hints about values, not flags: a flag missing here still completes, its
# value just gets no suggestions.
DIR_VALUES = ("root", "bundle", "image-path", "work-path", "parent-path", "diff")
FILE_VALUES = ("log", "pid-file", "console-socket", "process", "resources", "criu")
CHOICES = {
    "log-format": ("text", "json"),
    "rootless": ("true", "false", "auto"),
    "manage-cgroups-mode": ("soft", "full", "strict"),
    ("list", "format"): ("table", "json"),
    ("ps", "format"): ("table", "json"),
    ("plan", "format"): ("text", "json"),
}
# Commands whose first argument names a container that does not exist yet.
NEW_ID_COMMANDS = ("create", "run", "restore")


# -- the command line, read from its definition -------------------------------------------------


def command_module(name: str):
    return importlib.import_module(f"ocirt.commands.{name}")


def commands() -> dict:
    """name -> (one-line help, module), in the order of cli.COMMANDS."""
    return {name: (text, command_module(name)) for name, text in cli.COMMANDS.items()}


def aliases() -> dict:
    """alias -> command, without identities (`ps` -> `ps`)."""
    return {a: c for a, c in getattr(cli, "ALIASES", {}).items() if a != c}


def global_options() -> tuple:
    return tuple(cli.GLOBAL_OPTIONS)


def options(module) -> tuple:
    return tuple(getattr(module, "OPTIONS", ()))


def flags(opt) -> list[str]:
    """The spellings completion offers: --name and, if any, -x."""
    return [f"--{opt.name}"] + ([f"-{opt.short}"] if opt.short else [])


def takes_id(name: str, module) -> bool:
    """Does the command's first argument name an existing container?"""
    return "container-id>" in module.USAGE and name not in NEW_ID_COMMANDS


def value_kind(command: str, opt):
    """('dir',) | ('file',) | ('choice', words) | None, for completing a flag's value."""
    choice = CHOICES.get((command, opt.name)) or CHOICES.get(opt.name)
    if choice:
        return ("choice", choice)
    if opt.name in DIR_VALUES:
        return ("dir",)
    if opt.name in FILE_VALUES:
        return ("file",)
    return None


# -- man pages ----------------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Plain text -> roff text: backslashes escaped, no line read as a request."""
    lines = []
    for line in text.replace("\\", "\\e").split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _dash(text: str) -> str:
    return _roff(text).replace("-", "\\-")


def _option_roff(opt) -> list[str]:
    head = f"\\fB{_dash('--' + opt.name)}\\fR"
    if opt.short:
        head += f", \\fB{_dash('-' + opt.short)}\\fR"
    if opt.value:
        head += " \\fIvalue\\fR"
    first, _, rest = (opt.help or "").strip("\n").partition("\n")
    text = _roff(first)
    if opt.value and opt.default not in (None, ""):
        text += f" (default: {_roff(str(opt.default))})"
    if opt.multi:
        text += " (may be given more than once)"
    out = [".TP", head, text]
    if rest.strip():
        out += [".RS", ".PP", ".nf", _roff(rest.strip("\n")), ".fi", ".RE"]
    return out


def _page_head(name: str, title: str) -> list[str]:
    return [
        ".\\\" Generated from ocirt's command line by `python -m ocirt.manual`; do not edit.",
        f'.TH {name.upper()} {SECTION} "" "ocirt {__version__}" "System Administration"',
        ".SH NAME",
        f"{_dash(name)} \\- {_roff(title)}",
    ]


def man_page(name: str, text: str, module) -> str:
    """ocirt-<name>(8)."""
    out = _page_head(f"ocirt-{name}", text)
    out.append(".SH SYNOPSIS")
    for i, usage in enumerate(u.strip() for u in module.USAGE.split("||")):
        usage = usage if usage.split(" ")[0] == name else f"{name} {usage}"
        out += ([".br"] if i else []) + [f"\\fBocirt\\fR [\\fIglobal options\\fR] {_dash(usage)}"]
    out += [".SH DESCRIPTION", f"{_roff(text[:1].upper() + text[1:])}."]
    names = [a for a, c in aliases().items() if c == name]
    if names:
        out += [".PP", "Also called as " + ", ".join(f"\\fBocirt {_dash(a)}\\fR" for a in names) + "."]
    if getattr(module, "STOP_AT_ARGS", False):
        out += [".PP", "Flags after the container id belong to the command, not to ocirt."]
    opts = options(module)
    if opts:
        out.append(".SH OPTIONS")
        for o in opts:
            out += _option_roff(o)
    out += [
        ".SH GLOBAL OPTIONS",
        "The global options of \\fBocirt\\fR(8) go before the command name.",
        ".SH EXIT STATUS",
        _exit_status(name),
        ".SH SEE ALSO",
        "\\fBocirt\\fR(8), \\fBrunc\\fR(8)",
    ]
    return "\n".join(out) + "\n"


def _exit_status(name: str) -> str:
    if name == "run":
        return (
            "The exit code of the container's process (128+N if signal N ended it); 1 if the "
            "container could not be made; 0 with \\fB\\-\\-detach\\fR once it runs."
        )
    if name == "exec":
        return (
            "The exit code of the process (128+N if signal N ended it); 1 if it could not be "
            "started; 0 with \\fB\\-\\-detach\\fR once it runs."
        )
    return "0 on success; 1 on an error, which is printed on one line to standard error (and the log)."


def main_page(cmds: dict) -> str:
    """ocirt(8): the commands and the global options."""
    out = _page_head("ocirt", "Open Container Initiative runtime")
    out += [
        ".SH SYNOPSIS",
        "\\fBocirt\\fR [\\fIglobal options\\fR] \\fIcommand\\fR [\\fIcommand options\\fR] "
        "[\\fIarguments\\fR...]",
        ".SH DESCRIPTION",
        "\\fBocirt\\fR is a low\\-level OCI container runtime written in Python. It makes a "
        "container from an OCI bundle (a \\fIconfig.json\\fR and a root filesystem) with Linux "
        "namespaces, cgroups, mounts and a pivoted root. Its command line is runc's, so "
        "container engines can call it where they call \\fBrunc\\fR(8).",
        ".SH COMMANDS",
    ]
    for name, (text, _module) in cmds.items():
        out += [
            ".TP",
            f"\\fB{_dash(name)}\\fR",
            f"{_roff(text)}; see \\fBocirt\\-{_dash(name)}\\fR({SECTION}).",
        ]
    al = aliases()
    if al:
        out += [
            ".PP",
            "Aliases: "
            + ", ".join(f"\\fB{_dash(a)}\\fR for \\fB{_dash(c)}\\fR" for a, c in al.items())
            + ".",
        ]
    out.append(".SH GLOBAL OPTIONS")
    for o in global_options():
        out += _option_roff(o)
    out += [
        ".SH ENVIRONMENT",
        ".TP",
        "\\fBXDG_RUNTIME_DIR\\fR",
        "When not root, the default state directory is \\fI$XDG_RUNTIME_DIR/ocirt\\fR.",
        ".TP",
        "\\fBLISTEN_FDS\\fR, \\fBLISTEN_PID\\fR",
        "Socket activation (\\fBcreate\\fR, \\fBrun\\fR): when LISTEN_PID is ocirt's pid, the LISTEN_FDS "
        "fds from 3 on go to the container's process before any \\fB\\-\\-preserve\\-fds\\fR ones, "
        "with LISTEN_FDS=N and LISTEN_PID=1 in its environment.",
        ".TP",
        "\\fBNOTIFY_SOCKET\\fR",
        "Readiness (\\fBcreate\\fR, \\fBrun\\fR, \\fBstart\\fR): the container gets a socket of its own at "
        "\\fI/run/notify/notify.sock\\fR; its READY= is passed on to this socket, with MAINPID.",
        ".SH FILES",
        ".TP",
        "\\fI/run/ocirt\\fR",
        "The default state directory (\\fB\\-\\-root\\fR): one directory per container.",
        ".SH EXIT STATUS",
        "0 on success; 1 on an error, printed on one line to standard error. "
        "\\fBrun\\fR and \\fBexec\\fR exit with the code of the container's process.",
        ".SH SEE ALSO",
        ", ".join(f"\\fBocirt\\-{_dash(n)}\\fR({SECTION})" for n in cmds) + ", \\fBrunc\\fR(8)",
    ]
    return "\n".join(out) + "\n"


def generate_man(directory: str) -> list[str]:
    """Write ocirt.8 and ocirt-<command>.8 into `directory`; returns the paths written."""
    os.makedirs(directory, exist_ok=True)
    cmds = commands()
    pages = {"ocirt": main_page(cmds)}
    pages.update({f"ocirt-{n}": man_page(n, t, m) for n, (t, m) in cmds.items()})
    paths = []
    for page, text in pages.items():
        path = os.path.join(directory, f"{page}.{SECTION}")
        _write(path, text)
        paths.append(path)
    return paths


# -- bash ---------------------------------------------------------------------------------------


def _words(items) -> str:
    return " ".join(items)


def _bash_case(arms: list[tuple[list[str], str]], indent: str = "        ") -> str:
    return "\n".join(f"{indent}{'|'.join(pats)}) {body} ;;" for pats, body in arms if pats)


def _bash_value_arms(cmd_opts: list[tuple[str, tuple]]) -> str:
    """case arms over "command:flag" (command "" for the global flags) -> fill COMPREPLY."""
    by_action: dict[str, list[str]] = {}
    for command, opts in cmd_opts:
        for o in opts:
            if not o.value:
                continue
            kind = value_kind(command, o)
            if kind is None:
                continue
            if kind[0] == "dir":
                action = 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$3"))'
            elif kind[0] == "file":
                action = 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$3"))'
            else:
                action = f'COMPREPLY=($(compgen -W "{_words(kind[1])}" -- "$3"))'
            by_action.setdefault(action, []).extend(f"{command}:{f}" for f in flags(o))
    return _bash_case([(pats, action) for action, pats in by_action.items()])


def bash_completion() -> str:
    """A bash completion script for ocirt (`complete -F _ocirt ocirt`)."""
    cmds = commands()
    gopts = global_options()
    flag_arms = [
        ([name], f"echo '{_words(f for o in options(m) for f in flags(o))}'")
        for name, (_t, m) in cmds.items()
    ]
    value_flags = [
        ([name], f"echo ' {_words(f for o in options(m) if o.value for f in flags(o))} '")
        for name, (_t, m) in cmds.items()
    ]
    alias_arms = [([a], f"echo {c}") for a, c in aliases().items()]
    stops = [n for n, (_t, m) in cmds.items() if getattr(m, "STOP_AT_ARGS", False)]
    ids = [n for n, (_t, m) in cmds.items() if takes_id(n, m)]
    values = _bash_value_arms([("", gopts)] + [(n, options(m)) for n, (_t, m) in cmds.items()])
    gvalue = _words(f for o in gopts if o.value for f in flags(o))
    return f"""\
# bash completion for ocirt(8): commands, flags, flag values and container ids (`ocirt list`).
# Generated from ocirt's command line by `python -m ocirt.manual`; do not edit.

_ocirt_commands='{_words(cmds)}'
_ocirt_global_flags='{_words(f for o in gopts for f in flags(o))}'
_ocirt_global_value_flags=' {gvalue} '
_ocirt_id_commands=' {_words(ids)} '
_ocirt_stop_commands=' {_words(stops)} '

# The flags of command $1.
_ocirt_flags() {{
    case $1 in
{_bash_case(flag_arms)}
    esac
}}

# Those of them that take a value, space-delimited.
_ocirt_value_flags() {{
    case $1 in
{_bash_case(value_flags)}
        *) echo ' ' ;;
    esac
}}

# The command an alias stands for.
_ocirt_command() {{
    case $1 in
{_bash_case(alias_arms)}
        *) echo "$1" ;;
    esac
}}

# Values of flag $2 of command $1 ("" for a global flag) that start with $3.
_ocirt_values() {{
    case "$1:$2" in
{values}
    esac
}}

# Container ids under the --root given on the line ($2), from `$1 list -q`.
_ocirt_ids() {{
    if [[ -n $2 ]]; then
        "$1" --root "$2" list -q 2>/dev/null
    else
        "$1" list -q 2>/dev/null
    fi
}}

_ocirt() {{
    COMPREPLY=()
    local line=${{COMP_LINE:0:COMP_POINT}} cur="" a
    local -a w
    read -ra w <<< "$line"
    if [[ $line != *[[:space:]] && ${{#w[@]}} -gt 0 ]]; then
        cur=${{w[${{#w[@]}}-1]}}
        unset 'w[${{#w[@]}}-1]'
    fi
    local prog=${{w[0]:-ocirt}} root="" cmd="" pending="" i=1 n=${{#w[@]}}
    # global flags, up to the command
    while ((i < n)); do
        a=${{w[i]}}
        [[ $a == -[!-]?* && $a != *=* ]] && a=-$a      # -root as --root (Go's flags)
        case $a in
            --root=*|-root=*) root=${{a#*=}} ;;
            -*=*) ;;
            -*) if [[ $_ocirt_global_value_flags == *" $a "* ]]; then
                    if ((i + 1 < n)); then
                        [[ $a == --root ]] && root=${{w[i+1]}}
                        ((i++))
                    else
                        pending=$a
                    fi
                fi ;;
            *) cmd=$(_ocirt_command "$a"); ((i++)); break ;;
        esac
        ((i++))
    done
    if [[ -z $cmd ]]; then
        if [[ -n $pending ]]; then
            _ocirt_values "" "$pending" "$cur"
        elif [[ $cur == -*=* ]]; then
            a=${{cur%%=*}}; [[ $a == -[!-]* ]] && a=-$a
            _ocirt_values "" "$a" "${{cur#*=}}"
        elif [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$_ocirt_global_flags" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_ocirt_commands help" -- "$cur"))
        fi
        return 0
    fi
    # the command's flags and arguments
    local vflags npos=0 stop=""
    vflags=$(_ocirt_value_flags "$cmd")
    while ((i < n)); do
        a=${{w[i]}}
        if [[ -z $stop && $a == -?* ]]; then
            [[ $a == -[!-]?* && $a != *=* ]] && a=-$a
            if [[ $a != *=* && $vflags == *" $a "* ]]; then
                if ((i + 1 < n)); then ((i++)); else pending=$a; fi
            fi
        else
            ((npos++))
            [[ $_ocirt_stop_commands == *" $cmd "* ]] && stop=1
        fi
        ((i++))
    done
    if [[ -n $pending ]]; then
        _ocirt_values "$cmd" "$pending" "$cur"
    elif [[ -z $stop && $cur == -*=* ]]; then
        a=${{cur%%=*}}; [[ $a == -[!-]* ]] && a=-$a
        _ocirt_values "$cmd" "$a" "${{cur#*=}}"
    elif [[ -z $stop && $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_ocirt_flags "$cmd") --help" -- "$cur"))
    elif [[ $cmd == help ]]; then
        ((npos == 0)) && COMPREPLY=($(compgen -W "$_ocirt_commands" -- "$cur"))
    elif ((npos == 0)) && [[ $_ocirt_id_commands == *" $cmd "* ]]; then
        COMPREPLY=($(compgen -W "$(_ocirt_ids "$prog" "$root")" -- "$cur"))
    elif ((npos == 1)) && [[ $cmd == kill ]]; then
        a=$(compgen -A signal)
        COMPREPLY=($(compgen -W "$a ${{a//SIG/}}" -- "$cur"))
    fi
    return 0
}}

complete -F _ocirt ocirt
"""


# -- zsh ----------------------------------------------------------------------------------------


def _zq(text: str) -> str:
    """Text inside a single-quoted zsh word."""
    return text.replace("'", "'\\''")


def _zdesc(text: str) -> str:
    first = (text or "").strip().split("\n")[0]
    return _zq(first.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:"))


def _zsh_spec(command: str, opt) -> str:
    """One _arguments spec: '(--bundle -b)'{--bundle=,-b+}'[help]:value:action'."""
    names = flags(opt)
    if opt.value:
        spelled = [f"{names[0]}="] + ([f"{names[1]}+"] if opt.short else [])
    else:
        spelled = names[:]
    action = ""
    if opt.value:
        kind = value_kind(command, opt)
        if kind is None:
            action = ":value: "
        elif kind[0] == "dir":
            action = ":directory:_files -/"
        elif kind[0] == "file":
            action = ":file:_files"
        else:
            action = f":value:({' '.join(kind[1])})"
    star = "*" if opt.multi else ""
    excl = "" if opt.multi else f"({' '.join(names)})"
    tail = f"[{_zdesc(opt.help)}]{_zq(action)}"
    if len(spelled) == 1:
        return f"'{excl}{star}{spelled[0]}{tail}'"
    return f"'{excl}'{{{','.join(star + s for s in spelled)}}}'{tail}'"


def zsh_completion() -> str:
    """A zsh completion function for ocirt (#compdef ocirt, file `_ocirt`)."""
    cmds = commands()
    cmd_list = "\n".join(f"        '{_zq(n)}:{_zdesc(t)}'" for n, (t, _m) in cmds.items())
    gspecs = " \\\n        ".join(_zsh_spec("", o) for o in global_options())
    arms = []
    for name, (_t, m) in cmds.items():
        pats = "|".join([name] + [a for a, c in aliases().items() if c == name])
        specs = [_zsh_spec(name, o) for o in options(m)] + ["'(- *)'{-h,--help}'[show help]'"]
        if takes_id(name, m):
            specs.append("'1:container id:_ocirt_ids'")
        elif "container-id>" in m.USAGE or "[container-id]" in m.USAGE:
            specs.append("'1:container id: '")
        if name == "kill":
            specs.append("'2:signal:_ocirt_signals'")
        if getattr(m, "STOP_AT_ARGS", False):
            specs.append("'*::argument: _normal'" if name == "exec" else "'*::ps option: '")
        body = " \\\n                ".join(specs)
        arms.append(
            f"            ({pats})\n                _arguments -s -S \\\n                {body} && ret=0\n                ;;"
        )
    arm_text = "\n".join(arms)
    return f"""\
#compdef ocirt
# zsh completion for ocirt(8): commands, flags, flag values and container ids (`ocirt list`).
# Generated from ocirt's command line by `python -m ocirt.manual`; do not edit.

_ocirt_ids() {{
    local -a ids
    ids=(${{(f)"$(_call_program containers $ocirt_prog ${{ocirt_root:+--root $ocirt_root}} list -q 2>/dev/null)"}})
    _describe -t containers 'container' ids
}}

_ocirt_signals() {{
    _wanted signals expl 'signal' compadd -- ${{signals[2,-3]}} SIG${{^signals[2,-3]}}
}}

_ocirt() {{
    local curcontext="$curcontext" state line ret=1
    local ocirt_prog=${{words[1]}} ocirt_root
    typeset -A opt_args
    _arguments -C \\
        {gspecs} \\
        '1:command:->command' \\
        '*::argument:->argument' && ret=0
    case $state in
        command)
            local -a commands
            commands=(
{cmd_list}
            )
            _describe -t commands 'ocirt command' commands && ret=0
            ;;
        argument)
            ocirt_root=${{opt_args[--root]}}
            curcontext="${{curcontext%:*:*}}:ocirt-$words[1]:"
            case $words[1] in
{arm_text}
            (help)
                _describe -t commands 'ocirt command' commands && ret=0
                ;;
            esac
            ;;
    esac
    return ret
}}

_ocirt "$@"
"""


# -- writing and installing ---------------------------------------------------------------------


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def install(prefix: str = "/usr/local") -> list[str]:
    """Man pages into PREFIX/share/man/man8, bash completion into
    PREFIX/share/bash-completion/completions/ocirt, zsh's into PREFIX/share/zsh/site-functions."""
    share = os.path.join(prefix, "share")
    paths = generate_man(os.path.join(share, "man", f"man{SECTION}"))
    for path, text in (
        (os.path.join(share, "bash-completion", "completions", "ocirt"), bash_completion()),
        (os.path.join(share, "zsh", "site-functions", "_ocirt"), zsh_completion()),
    ):
        _write(path, text)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m ocirt.manual",
        description="Write ocirt's man pages and shell completion, made from its command line.",
    )
    p.add_argument("--man", metavar="DIR", help="write ocirt.8 and ocirt-<command>.8 into DIR")
    p.add_argument("--bash", metavar="FILE", help="write the bash completion script to FILE")
    p.add_argument("--zsh", metavar="FILE", help="write the zsh completion function (_ocirt) to FILE")
    p.add_argument(
        "--install",
        action="store_true",
        help="write all three where man, bash-completion and zsh look, under --prefix",
    )
    p.add_argument("--prefix", default="/usr/local", help="for --install (default: /usr/local)")
    a = p.parse_args(argv)
    if not (a.man or a.bash or a.zsh or a.install):
        p.error("nothing to do: give --man, --bash, --zsh or --install")
    written = []
    try:
        if a.man:
            written += generate_man(a.man)
        if a.bash:
            _write(a.bash, bash_completion())
            written.append(a.bash)
        if a.zsh:
            _write(a.zsh, zsh_completion())
            written.append(a.zsh)
        if a.install:
            written += install(a.prefix)
    except OSError as e:
        sys.stderr.write(f"ocirt.manual: {e.strerror}: {e.filename}\n")
        return 1
    for path in written:
        sys.stdout.write(path + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
