"""The library never imports the command line, and its modules import each other without cycles.

ocirt/cli.py and ocirt/commands/ turn argv into calls of the core; ocirt/api.py turns Python calls
into the same calls. So nothing but the command line itself imports ocirt.cli or ocirt.commands,
wherever the import statement is (module level or inside a function). And the module-level imports
among ocirt's modules form no cycle (a cycle works only by the accident of import order).
"""

import ast
import os

OCIRT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "ocirt")

# (importing module, imported module) pairs allowed for now
ALLOWED = {
    # the program's entry point, `python -m ocirt`, is the command line
    ("ocirt.__main__", "ocirt.cli"),
    # and bin/ocirt's, which opens the attach window before the command line is imported
    ("ocirt.launch", "ocirt.cli"),
    # man pages and completion are generated from the command line's own definition
    ("ocirt.manual", "ocirt.cli"),
}


def _modules() -> dict:
    """module name -> path, for every ocirt/**.py."""
    out = {}
    root = os.path.dirname(OCIRT)
    for d, _, files in os.walk(OCIRT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].endswith("__init__.py")


def _imports(name: str, module_level_only: bool) -> set:
    """The ocirt modules `name` imports (by its import statements)."""
    tree = ast.parse(open(MODULES[name]).read(), MODULES[name])
    package = name if _is_package(name) else name.rpartition(".")[0]
    nodes = []

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue  # runs when called, not when imported
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                nodes.append(child)
            walk(child)

    walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            if sub in MODULES:
                found.add(sub)  # from pkg import submodule
            else:
                found.add(target)  # from module import name
    return {m for m in found if m in MODULES}


def _command_line(name: str) -> bool:
    return name == "ocirt.cli" or name == "ocirt.commands" or name.startswith("ocirt.commands.")


def test_modules_found():
    assert {"ocirt.api", "ocirt.cli", "ocirt.container", "ocirt.commands.kill"} <= set(MODULES)


def test_only_the_command_line_imports_the_command_line():
    wrong = sorted(
        (name, target)
        for name in MODULES
        if not _command_line(name)
        for target in _imports(name, module_level_only=False)
        if _command_line(target) and (name, target) not in ALLOWED
    )
    assert wrong == []


def test_allowed_exceptions_are_still_needed():
    """An exception nobody needs any more goes from ALLOWED."""
    for name, target in ALLOWED:
        assert target in _imports(name, module_level_only=False), (name, target)


def _cycles(graph: dict) -> list:
    """The cycles a depth-first walk of graph (name -> names) runs into."""
    cycles = []
    state = {}  # name -> 1 on the current path, 2 done

    def visit(name, path):
        state[name] = 1
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    return cycles


def test_no_import_cycle_at_module_level():
    graph = {name: _imports(name, module_level_only=True) - {name} for name in MODULES}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_checker_sees_function_level_and_relative_imports():
    """_imports() resolves `from ..x import y` and `from . import x`, at any depth."""
    assert "ocirt.cgroups.update" in _imports("ocirt.api", module_level_only=False)
    assert "ocirt.cgroups.update" not in _imports("ocirt.api", module_level_only=True)
    assert "ocirt.cli" in _imports("ocirt.commands.kill", module_level_only=True)
    assert "ocirt.errors" in _imports("ocirt.container", module_level_only=True)


def test_hot_commands_import_no_costly_module():
    """start, state, kill, delete (and the core they call) stay off re, json, enum, typing, ..."""
    import subprocess
    import sys

    script = (
        "import sys; import ocirt.cli, ocirt.commands.start, ocirt.commands.state,"
        " ocirt.commands.kill, ocirt.commands.delete, ocirt.container, ocirt.signals,"
        " ocirt.defaults;"
        "print(sorted(m for m in ('re', 'enum', 'json', 'dataclasses', 'typing', 'click',"
        " 'jsonschema', 'subprocess', 'signal') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=os.path.dirname(OCIRT), capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_no_assert_statement_and_no_docstring_read():
    """bin/ocirt runs the code of a command's bundle compiled as `python -OO` compiles it
    (bundle_writer.lean_code): an assert there would not run, and every __doc__ is None. So ocirt
    states its checks as code and never reads a docstring."""
    found = []
    for name, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert) or (isinstance(node, ast.Attribute) and node.attr == "__doc__"):
                found.append(f"{name}:{node.lineno}")
            elif isinstance(node, ast.Name) and node.id == "__debug__":
                found.append(f"{name}:{node.lineno}")
    assert found == []


def test_future_imports_are_lines_of_their_own_at_the_top():
    """bundle_writer.lean_code blanks the line `from __future__ import annotations` and compiles with
    its flag: in ocirt that line is always the statement itself, at the module's top level."""
    for name, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        lines = [
            i + 1 for i, line in enumerate(text.splitlines()) if line == "from __future__ import annotations"
        ]
        statements = [
            node.lineno
            for node in ast.parse(text, path).body
            if isinstance(node, ast.ImportFrom) and node.module == "__future__"
        ]
        assert lines == statements, name
