"""Man pages and shell completion are made from the command line's one definition: every command
and every flag shows up in the man pages and in both completions, the pages render, and the bash
completion completes commands, flags, values and container ids in a real bash."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from ocirt import cli, manual

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def spellings(opts):
    return [f for o in opts for f in [f"--{o.name}"] + ([f"-{o.short}"] if o.short else [])]


def definition():
    """(command, [flag spellings]) for every command, from cli.py and ocirt/commands/."""
    import importlib

    return [
        (name, spellings(importlib.import_module(f"ocirt.commands.{name}").OPTIONS)) for name in cli.COMMANDS
    ]


GLOBAL_FLAGS = spellings(cli.GLOBAL_OPTIONS)


def roff_text(path):
    return open(path).read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("manual")
    assert (
        manual.main(["--man", str(d / "man8"), "--bash", str(d / "ocirt.bash"), "--zsh", str(d / "_ocirt")])
        == 0
    )
    return d


def test_every_command_and_flag_in_the_man_pages(generated):
    main = roff_text(generated / "man8" / "ocirt.8")
    for flag in GLOBAL_FLAGS:
        assert re.search(rf"(^|[ ,]){re.escape(flag)}\b", main, re.M), flag
    for name, flags in definition():
        assert f"ocirt-{name}(8)" in main
        page = roff_text(generated / "man8" / f"ocirt-{name}.8")
        assert f"ocirt-{name} - {cli.COMMANDS[name]}" in page
        for usage in manual.command_module(name).USAGE.split("||"):  # exec has two forms
            assert usage.strip() in page, (name, usage)
        for flag in flags:
            assert re.search(rf"(^|[ ,]){re.escape(flag)}\b", page, re.M), (name, flag)


def test_no_page_without_a_command(generated):
    pages = sorted(p.name for p in (generated / "man8").iterdir())
    assert pages == sorted(["ocirt.8"] + [f"ocirt-{n}.8" for n in cli.COMMANDS])


def _man(path, env):
    return subprocess.run(["man", "-l", str(path)], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.skipif(not shutil.which("man") or not shutil.which("groff"), reason="no man/groff")
def test_man_pages_render(generated):
    env = dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="200", LC_ALL="C.UTF-8")
    for page in sorted((generated / "man8").iterdir()):
        p = _man(page, env)
        assert p.returncode == 0, (page, p.stderr)
        warnings = [line for line in p.stderr.splitlines() if "warning" in line]
        assert not warnings, (page.name, warnings)
        text = p.stdout
        assert "NAME" in text and "SYNOPSIS" in text, page.name
        name = page.name[:-2]
        if name == "ocirt":
            for flag in GLOBAL_FLAGS:
                assert flag in text, flag
            for cmd in cli.COMMANDS:
                assert f"ocirt-{cmd}(8)" in text, cmd
        else:
            cmd = name[len("ocirt-") :]
            for flag in dict(definition())[cmd]:
                assert flag in text, (cmd, flag)


def _zsh_arms(script):
    """{command: the text of its case arm} from the generated zsh function."""
    arms = {}
    for m in re.finditer(r"^ {12}\(([a-z|]+)\)\n(.*?);;", script, re.M | re.S):
        for name in m.group(1).split("|"):
            arms[name] = m.group(2)
    return arms


def test_every_command_and_flag_in_the_zsh_completion(generated):
    script = (generated / "_ocirt").read_text()
    assert script.startswith("#compdef ocirt\n")
    head = script.split("'1:command:->command'")[0]
    for flag in GLOBAL_FLAGS:
        assert re.search(rf"[{{,'(]{re.escape(flag)}[=+,}}'\[ )]", head), flag
    arms = _zsh_arms(script)
    for name, flags in definition():
        assert re.search(rf"^ +'{name}:", script, re.M), name
        assert name in arms, name
        for flag in flags:
            assert re.search(rf"[{{,'(]\*?{re.escape(flag)}[=+,}}'\[ )]", arms[name]), (name, flag)
    for alias, target in manual.aliases().items():
        assert arms[alias] == arms[target]


@pytest.mark.skipif(not shutil.which("zsh"), reason="no zsh")
def test_zsh_completion_parses(generated):
    p = subprocess.run(["zsh", "-n", str(generated / "_ocirt")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


# -- bash, for real -------------------------------------------------------------------------------


@pytest.fixture
def fake_root(tmp_path):
    """A state root with two containers `ocirt list` shows, and an `ocirt` on PATH that runs this
    source tree."""
    root = tmp_path / "root"
    for cid in ("web1", "db2"):
        (root / cid).mkdir(parents=True)
        (root / cid / "state.json").write_text(json.dumps({"id": cid, "bundle": str(tmp_path)}))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    prog = bindir / "ocirt"
    prog.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m ocirt "$@"\n')
    prog.chmod(0o755)
    return root, bindir


def complete(script, lines, bindir=None):
    """COMPREPLY of the generated bash completion for each partial command line."""
    prog = [
        "source " + _sh(script),
        "complete -p ocirt",
        'c() { COMP_LINE=$1; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$1"; '
        'COMP_CWORD=${#COMP_WORDS[@]}; _ocirt; printf "%s\\n" "--" "${COMPREPLY[@]}"; }',
    ]
    prog += [f"c {_sh(line)}" for line in lines]
    env = dict(os.environ)
    if bindir:
        env["PATH"] = f"{bindir}:{env['PATH']}"
    p = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "\n".join(prog)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    first, *replies = p.stdout.split("--\n")
    assert first.strip() == "complete -F _ocirt ocirt"
    assert len(replies) == len(lines)
    return [r.split() for r in replies]


def _sh(text):
    return "'" + str(text).replace("'", "'\\''") + "'"


pytestmark_bash = pytest.mark.skipif(not shutil.which("bash"), reason="no bash")


@pytestmark_bash
def test_bash_completes_every_command_and_flag(generated):
    defs = definition()
    lines = ["ocirt ", "ocirt -"] + [f"ocirt {name} -" for name, _ in defs]
    got = complete(generated / "ocirt.bash", lines)
    assert set(got[0]) == set(cli.COMMANDS) | {"help"}
    assert set(got[1]) == set(GLOBAL_FLAGS)
    for (name, flags), reply in zip(defs, got[2:]):
        assert set(reply) == set(flags) | {"--help"}, name


@pytestmark_bash
def test_bash_completes_commands_flags_values_and_ids(generated, fake_root):
    root, bindir = fake_root
    got = complete(
        generated / "ocirt.bash",
        [
            "ocirt cr",
            "ocirt create --b",
            "ocirt --log-format ",
            "ocirt --log-format=j",
            "ocirt list --format ",
            f"ocirt --root {root} state ",
            f"ocirt --root {root} delete --force w",
            f"ocirt --root={root} rm d",
            f"ocirt --root {root} kill web1 SIGKI",
            f"ocirt --root {root} exec web1 ls -",
            f"ocirt --root {root} create ",
            f"ocirt create --bundle {root.parent}/ro",
        ],
        bindir,
    )
    assert got[0] == ["create"]
    assert got[1] == ["--bundle"]
    assert got[2] == ["text", "json"]
    assert got[3] == ["json"]
    assert got[4] == ["table", "json"]
    assert sorted(got[5]) == ["db2", "web1"]
    assert got[6] == ["web1"]
    assert got[7] == ["db2"]
    assert got[8] == ["SIGKILL"]
    assert got[9] == []  # after the command in the container: its own flags
    assert got[10] == []  # create names a new container
    assert got[11] == [str(root)]


def test_install_puts_pages_where_man_finds_them(tmp_path):
    assert manual.main(["--install", "--prefix", str(tmp_path)]) == 0
    share = tmp_path / "share"
    assert (share / "bash-completion" / "completions" / "ocirt").is_file()
    assert (share / "zsh" / "site-functions" / "_ocirt").is_file()
    for name in cli.COMMANDS:
        assert (share / "man" / "man8" / f"ocirt-{name}.8").is_file()
    if shutil.which("man"):
        env = dict(os.environ, MANPATH=str(share / "man"))
        p = subprocess.run(["man", "-w", "ocirt-create"], capture_output=True, text=True, env=env)
        assert p.stdout.strip() == str(share / "man" / "man8" / "ocirt-create.8"), p.stderr


def test_nothing_to_do_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        manual.main([])
    assert e.value.code == 2


def test_the_runtime_does_not_import_the_generator():
    code = "import sys, ocirt.cli; ocirt.cli.main(['--version']); print('ocirt.manual' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert p.stdout.strip().splitlines()[-1] == "False"


# -- zsh and bash-completion, as a user at a terminal ---------------------------------------------


def _pty_session(argv, env, setup, line, expect, timeout=30.0):
    """Start argv on a pty, type `setup`, wait for READY, type `line` and two Tabs; returns the
    terminal's output (escapes removed) once every word of `expect` appeared, or at the timeout."""
    import pty
    import select
    import signal
    import time

    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)

    def read_until(words, deadline):
        out = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))
                if all(w in text for w in words):
                    return text
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))

    try:
        os.write(fd, setup.encode() + b"\n")
        read_until(["READY\r\n"], time.monotonic() + timeout)
        os.write(fd, line.encode() + b"\t\t")
        return read_until(expect, time.monotonic() + timeout).split("READY", 1)[-1]
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


@pytest.mark.skipif(not shutil.which("zsh"), reason="no zsh")
@pytest.mark.parametrize(
    "line, expect",
    [
        ("ocirt --root ROOT sta", ["start", "state", "output the state of a container"]),
        ("ocirt --root ROOT start ", ["db2", "web1"]),
        ("ocirt --root ROOT rm ", ["db2", "web1"]),
        ("ocirt list -", ["--format", "--quiet", "-q", "display only container IDs"]),
        ("ocirt --log-format ", ["json", "text"]),
        ("ocirt kill web1 SIGKI", ["SIGKILL"]),
    ],
)
def test_zsh_completes_at_a_terminal(generated, fake_root, tmp_path, line, expect):
    root, bindir = fake_root
    fdir = tmp_path / "functions"
    fdir.mkdir()
    shutil.copy(generated / "_ocirt", fdir / "_ocirt")
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TERM": "dumb",
        "ZDOTDIR": str(tmp_path),
    }
    setup = (
        f"fpath=({fdir} $fpath); autoload -U compinit; compinit -u -D; "
        "zstyle ':completion:*' list-prompt ''; PROMPT='P> '; print RE''ADY"
    )
    out = _pty_session(["zsh", "-f", "-i"], env, setup, line.replace("ROOT", str(root)), expect)
    for word in expect:
        assert word in out, (line, word, out)


@pytest.mark.skipif(
    not os.path.exists("/usr/share/bash-completion/bash_completion"), reason="no bash-completion package"
)
def test_bash_completion_package_loads_it_on_first_use(tmp_path, fake_root):
    """After --install, bash-completion finds the script itself (XDG_DATA_DIRS holds PREFIX/share)."""
    root, bindir = fake_root
    prefix = tmp_path / "prefix"
    assert manual.main(["--install", "--prefix", str(prefix)]) == 0
    script = (
        "source /usr/share/bash-completion/bash_completion\n"
        "complete -p ocirt >/dev/null 2>&1 && echo loaded-too-early\n"
        "_completion_loader ocirt\n"
        "complete -p ocirt\n"
        f"COMP_LINE='ocirt --root {root} kill w'; COMP_POINT=${{#COMP_LINE}}; "
        'COMP_WORDS=(ocirt --root x kill w); COMP_CWORD=4; _ocirt; echo "${COMPREPLY[*]}"\n'
    )
    env = dict(
        os.environ,
        PATH=f"{bindir}:{os.environ['PATH']}",
        XDG_DATA_DIRS=f"{prefix / 'share'}:/usr/share",
        BASH_COMPLETION_USER_DIR=str(tmp_path / "none"),
    )
    p = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert p.stdout.split("\n")[:2] == ["complete -F _ocirt ocirt", "web1"], (p.stdout, p.stderr)
