"""Check config.json against ocirt's JSON schemas (spec/*.json) and the rules a schema can't express.

There are two validators, and they must give the same answer:

- `validate(config)` is the one ocirt uses. It is a small interpreter for the JSON Schema keywords that
  spec/ uses (KEYWORDS below). It walks the config and the schema JSON side by side and stops at the
  first error. It does not import jsonschema, because that import alone costs more than a whole
  `ocirt create`.
- `validate_with_jsonschema(config)` runs the jsonschema library on the same files. It is the
  reference: the unit tests check that both validators accept and reject the same configs and point at
  the same place.

Both report a `ConfigError(pointer, rule)`. For a missing property the pointer names the missing member
(`/process/args`). Before the schema check they test the ociVersion major version. After it they look
for duplicate namespace types and duplicate rlimit types, which the spec says are errors.

Integers are strict in both validators: 1.0 and 1e3 are not integers, as in Go's encoding/json, which
is what runc and crun read the config with.
"""

from __future__ import annotations

from ocirt import jsonio
from ocirt.errors import ConfigError, OcirtError, json_pointer

from . import paths
from .gonum import decimal

CONFIG_SCHEMA = "config-schema.json"
SCHEMA_FILES = (
    "defs.json",
    "config-schema.json",
    "config-linux.json",
    "state-schema.json",
    "features-schema.json",
    "features-linux.json",
)
SCHEMA_BASE_URI = "https://ocirt.dev/schema/"
SUPPORTED_MAJOR = 1

# Every keyword the fast validator understands. The unit tests check spec/*.json uses no others.
KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "$defs",
        "$ref",
        "type",
        "enum",
        "const",
        "required",
        "dependentRequired",
        "properties",
        "additionalProperties",
        "propertyNames",
        "items",
        "minItems",
        "minLength",
        "pattern",
        "minimum",
        "maximum",
        "allOf",
        "anyOf",
        "not",
        "if",
        "then",
        "else",
    }
)


def schema_dir() -> str:
    """Where the schema files are: ocirt/_schemas in a wheel, spec/ next to the package in a checkout."""
    package = paths.dirname(paths.abspath(__file__))
    for directory in (paths.join(package, "_schemas"), paths.join(paths.dirname(package), "spec")):
        if paths.is_file(paths.join(directory, CONFIG_SCHEMA)):
            return directory
    raise OcirtError(f"cannot find {CONFIG_SCHEMA} in {package}/_schemas or {paths.dirname(package)}/spec")


class Schemas:
    """The schema documents of one directory, read when first needed."""

    def __init__(self, directory: str | None = None):
        self.directory = directory or schema_dir()
        self._docs: dict[str, dict] = {}

    def doc(self, name: str) -> dict:
        doc = self._docs.get(name)
        if doc is None:
            with open(paths.join(self.directory, name), encoding="utf-8") as f:
                doc = self._docs[name] = jsonio.load(f)
        return doc

    def resolve(self, ref: str, name: str) -> tuple[dict, str]:
        """Follow a $ref found in document `name`; return the schema and the document it is in."""
        target, _, fragment = ref.partition("#")
        if target:
            name = target.rsplit("/", 1)[-1]
        node = self.doc(name)
        for part in fragment.split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, name


def validate(config: dict, schemas: Schemas | None = None) -> None:
    """Raise ConfigError for the first thing wrong with `config` (a parsed config.json)."""
    check_version(config)
    error = first_error(config, schemas or Schemas())
    if error is not None:
        path, _keyword, rule = error
        raise ConfigError(json_pointer(path), rule)
    check_rules(config)


def validate_process(proc, document: str = "process.json") -> None:
    """exec's process (`--process FILE`, or config.json's with the flags applied) against the
    config schema's process definition, then check_strings; ConfigError naming `document`."""
    schemas = Schemas()
    try:
        _check(proc, {"$ref": "#/$defs/process"}, CONFIG_SCHEMA, schemas)
    except _Fail as fail:
        raise ConfigError(json_pointer(fail.path[::-1]), fail.rule, document) from None
    check_strings(proc, document)
    _unique(proc.get("rlimits") or (), ("rlimits",), "rlimit", document)
    check_console_size(proc, "", document)


def first_error(instance, schemas: Schemas, name: str = CONFIG_SCHEMA):
    """The first schema error in `instance` as (path, keyword, rule), or None."""
    try:
        _check(instance, schemas.doc(name), name, schemas)
    except _Fail as fail:
        return fail.path[::-1], fail.keyword, fail.rule
    return None


# The rules no JSON schema can express.


def check_version(config) -> None:
    """Only ociVersion 1.x is understood; other major versions may mean other things."""
    version = config.get("ociVersion") if isinstance(config, dict) else None
    major = _leading_major(version) if isinstance(version, str) else None
    if major is not None and decimal(major) != SUPPORTED_MAJOR:
        raise ConfigError(
            "/ociVersion",
            f"unsupported major version {major} in {_show(version)} (ocirt implements {SUPPORTED_MAJOR}.x)",
        )


def _leading_major(version: str) -> str | None:
    """The digits before the first '.', as re.match(r"(\\d+)\\.") finds them, or None."""
    n = 0
    while n < len(version) and version[n].isdecimal():
        n += 1
    return version[:n] if n and version[n : n + 1] == "." else None


# ---------------------------------------------------------------- patterns without `re`
#
# The schemas' few patterns as plain predicates: importing re (and enum with it) costs ~3 ms on
# every create. Each predicate is what re.search(pattern, s) answers, "$" included (it also
# matches before one final newline); tests/unit/test_validate.py checks them against re. A
# pattern not listed here falls back to re.

_DIGITS = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM_DASH = _DIGITS | _UPPER | frozenset("abcdefghijklmnopqrstuvwxyz-")


def _body(s: str) -> str:
    """s without the one final newline "$" may stand before."""
    return s[:-1] if s.endswith("\n") else s


def _all_in(chars):
    return lambda s: all(c in chars for c in _body(s))


def _prefixed_word(prefix: str, chars):
    def match(s):
        b = _body(s)
        return b.startswith(prefix) and len(b) > len(prefix) and all(c in chars for c in b[len(prefix) :])

    return match


def _page_size(s: str) -> bool:  # ^[1-9][0-9]*[KMGTPE]?B$
    b = _body(s)
    if len(b) < 2 or b[-1] != "B" or b[0] not in "123456789":
        return False
    middle = b[1:-1]
    if middle and middle[-1] in "KMGTPE":
        middle = middle[:-1]
    return all(c in _DIGITS for c in middle)


def _number(part: str) -> bool:  # 0|[1-9][0-9]*
    return part == "0" or (part[:1] in set("123456789") and all(c in _DIGITS for c in part))


def _dotted(part: str) -> bool:  # [0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*
    return all(p and all(c in _ALNUM_DASH for c in p) for p in part.split("."))


def _semver(s: str) -> bool:
    b = _body(s)
    core, plus, build = b.partition("+")
    if plus and not _dotted(build):
        return False
    core, dash, pre = core.partition("-")
    if dash and not _dotted(pre):
        return False
    parts = core.split(".")
    return len(parts) == 3 and all(_number(p) for p in parts)


_PATTERNS = {
    "^[rwm]*$": _all_in(frozenset("rwm")),
    "^[1-9][0-9]*[KMGTPE]?B$": _page_size,
    "^MB:": lambda s: s.startswith("MB:"),
    "^RLIMIT_[A-Z]+$": _prefixed_word("RLIMIT_", _UPPER),
    "^CAP_[A-Z0-9_]+$": _prefixed_word("CAP_", _UPPER | _DIGITS | {"_"}),
    "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?"
    "(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$": _semver,
    "^/": lambda s: s.startswith("/"),
    "\n": lambda s: "\n" in s,
    "^[0-9,:/ -]*$": _all_in(_DIGITS | frozenset(",:/ -")),
}


def pattern_matches(pattern: str, value: str) -> bool:
    known = _PATTERNS.get(pattern)
    if known is not None:
        return known(value)
    import re

    return re.search(pattern, value) is not None


def check_rules(config: dict) -> None:
    """The rules after the schema, for a config the schema accepted (`ocirt check` too)."""
    check_unique(config)
    check_strings(config)
    check_limits(config)


UTS_LEN = 64  # bytes of a hostname or domainname (the kernel's __NEW_UTS_LEN)
MAJOR_MAX = 0xFFF  # the kernel's dev_t: a 12-bit major and a 20-bit minor (mknod(2) takes no more)
MINOR_MAX = 0xFFFFF
UNCHANGED_ID = 0xFFFFFFFF  # (uid_t)-1: "leave as is" to chown(2), setresuid(2)...


def check_limits(config: dict) -> None:
    """What the kernel takes and the schema cannot say: a hostname or domainname of at most
    UTS_LEN bytes of UTF-8, linux.devices numbers that fit a dev_t and owners that are ids."""
    for key in ("hostname", "domainname"):
        name = config.get(key)
        if isinstance(name, str) and len(name.encode()) > UTS_LEN:
            raise ConfigError(f"/{key}", f"longer than the kernel's {UTS_LEN} bytes")
    check_console_size(config.get("process") or {}, "/process")
    for i, dev in enumerate((config.get("linux") or {}).get("devices") or ()):
        for key, top in (("major", MAJOR_MAX), ("minor", MINOR_MAX)):
            value = dev.get(key)
            if value is not None and not 0 <= value <= top:
                raise ConfigError(f"/linux/devices/{i}/{key}", f"{value} is not a device {key}: 0 to {top}")
        for key in ("uid", "gid"):
            if dev.get(key) == UNCHANGED_ID:  # chown(2) would leave the node root's
                raise ConfigError(f"/linux/devices/{i}/{key}", f"{UNCHANGED_ID} is (uid_t)-1, not an id")


WINSIZE_MAX = 0xFFFF  # struct winsize has unsigned shorts


def check_console_size(proc: dict, at: str, document: str = "config.json") -> None:
    for key in ("height", "width"):
        value = (proc.get("consoleSize") or {}).get(key)
        if isinstance(value, int) and value > WINSIZE_MAX:
            raise ConfigError(
                f"{at}/consoleSize/{key}", f"{value} is more than a terminal's {WINSIZE_MAX}", document
            )


def check_unique(config: dict) -> None:
    """A namespace type or an rlimit type may appear once (config-linux.md, config.md)."""
    _unique(config.get("linux", {}).get("namespaces", ()), ("linux", "namespaces"), "namespace type")
    _unique(config.get("process", {}).get("rlimits", ()), ("process", "rlimits"), "rlimit")


def check_strings(config: dict, document: str = "config.json") -> None:
    """Every string (and member name) must be text the kernel and state.json can take: no NUL byte
    (paths, args, env, hostnames... are C strings), except in /annotations, which only go back out
    as JSON; and no lone surrogate (a \\ud800 escape: not UTF-8, anywhere). Walked with a list,
    not recursion: a document may nest as deep as the parser let it."""
    todo: list[tuple[tuple, object]] = [((), config)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path, document, key=True)
                todo.append(((*path, key), item))
        elif isinstance(value, list):
            todo.extend(((*path, i), item) for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path, document)


def _check_text(text: str, path: tuple, document: str, key: bool = False) -> None:
    """`path` is where `text` is, or for a member name (`key`) the object that has it."""
    what = f"key {_show(text)}" if key else "string"
    if "\x00" in text and path[:1] != ("annotations",):
        raise ConfigError(json_pointer(path), f"{what} contains a NUL byte", document)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(
                json_pointer(path), f"{what} is not Unicode text (a lone surrogate)", document
            ) from None


def _unique(entries, where: tuple, what: str, document: str = "config.json") -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        kind = entry["type"]
        if kind in seen:
            first = json_pointer((*where, seen[kind]))
            raise ConfigError(
                json_pointer((*where, index)), f"duplicate {what} {_show(kind)} (first at {first})", document
            )
        seen[kind] = index


# The fast validator.


class _Fail(Exception):
    """A schema error; `path` is collected innermost first while the exception unwinds."""

    def __init__(self, keyword: str, rule: str, key=None):
        super().__init__(rule)
        self.keyword = keyword
        self.rule = rule
        self.path = [] if key is None else [key]


def _check(value, node: dict, name: str, schemas: Schemas) -> None:
    """Raise _Fail if `value` does not match the schema `node` of document `name`."""
    ref = node.get("$ref")
    if ref is not None:
        target, target_name = schemas.resolve(ref, name)
        _check(value, target, target_name, schemas)

    kind = node.get("type")
    if kind is not None and not _is_type(value, kind):
        raise _Fail("type", WORDS["type"](value, kind))
    if "enum" in node and not _in(value, node["enum"]):
        raise _Fail("enum", WORDS["enum"](value, node["enum"]))
    if "const" in node and not _equal(value, node["const"]):
        raise _Fail("const", WORDS["const"](value, node["const"]))

    if isinstance(value, dict):
        _check_object(value, node, name, schemas)
    elif isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            count = node["minItems"]
            raise _Fail("minItems", WORDS["minItems"](value, count))
        items = node.get("items")
        if items is not None:
            for index, item in enumerate(value):
                try:
                    _check(item, items, name, schemas)
                except _Fail as fail:
                    fail.path.append(index)
                    raise
    elif isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            raise _Fail("minLength", WORDS["minLength"](value, node["minLength"]))
        pattern = node.get("pattern")
        if pattern is not None and not pattern_matches(pattern, value):
            raise _Fail(
                "pattern", f"{_show(value)} is not {node.get('description') or 'matching ' + pattern}"
            )
    elif _is_type(value, "number"):
        if "minimum" in node and value < node["minimum"]:
            raise _Fail("minimum", WORDS["minimum"](value, node["minimum"]))
        if "maximum" in node and value > node["maximum"]:
            raise _Fail("maximum", WORDS["maximum"](value, node["maximum"]))

    _check_combinators(value, node, name, schemas)


def _check_object(value: dict, node: dict, name: str, schemas: Schemas) -> None:
    for key in node.get("required", ()):
        if key not in value:
            raise _Fail("required", WORDS["required"](value, key), key)
    for key, needs in node.get("dependentRequired", {}).items():
        if key in value:
            for other in needs:
                if other not in value:
                    raise _Fail("dependentRequired", f"'{other}' is required when '{key}' is set", other)
    properties = node.get("properties", {})
    others = node.get("additionalProperties")
    names = node.get("propertyNames")
    for key, item in value.items():
        if names is not None:
            try:
                _check(key, names, name, schemas)
            except _Fail as fail:
                fail.rule = f"key {fail.rule}"
                raise
        sub = properties.get(key, others)
        if sub is not None:
            try:
                _check(item, sub, name, schemas)
            except _Fail as fail:
                fail.path.append(key)
                raise


def _check_combinators(value, node: dict, name: str, schemas: Schemas) -> None:
    for sub in node.get("allOf", ()):
        _check(value, sub, name, schemas)
    branches = node.get("anyOf")
    if branches is not None and not any(_matches(value, sub, name, schemas) for sub in branches):
        needs = [sub["required"][0] for sub in branches if list(sub) == ["required"]]
        if len(needs) == len(branches):
            raise _Fail("anyOf", "needs at least one of " + ", ".join(f"'{key}'" for key in needs))
        raise _Fail("anyOf", f"{_show(value)} does not match any of the allowed forms")
    if "not" in node and _matches(value, node["not"], name, schemas):
        raise _Fail("not", f"{_show(value)} is not {node.get('description') or 'allowed here'}")
    if "if" in node:
        branch = node.get("then") if _matches(value, node["if"], name, schemas) else node.get("else")
        if branch is not None:
            _check(value, branch, name, schemas)


def _matches(value, node: dict, name: str, schemas: Schemas) -> bool:
    try:
        _check(value, node, name, schemas)
    except _Fail:
        return False
    return True


_PYTHON_TYPES: dict[str, type] = {"object": dict, "array": list, "string": str, "null": type(None)}


def _is_type(value, kind) -> bool:
    if isinstance(kind, list):
        return any(_is_type(value, one) for one in kind)
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return type(value) in (int, float)
    if kind == "boolean":
        return value is True or value is False
    return isinstance(value, _PYTHON_TYPES[kind])


def _equal(a, b) -> bool:
    """JSON equality: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _in(value, choices: list) -> bool:
    return any(_equal(value, choice) for choice in choices)


# One-line wording.

_ARTICLES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


# The rule a value breaks, by keyword: f(the value, what the keyword asks for (the missing
# member's name for "required")). validate()'s words, and jsonschema_error's for the same.
WORDS = {
    "type": lambda value, kind: f"{_show(value)} is not {_type_words(kind)}",
    "enum": lambda value, choices: f"{_show(value)} is not one of {_choices(choices)}",
    "const": lambda value, const: f"{_show(value)} is not {_show(const)}",
    "required": lambda _value, key: f"'{key}' is required",
    "minimum": lambda value, low: f"{value} is less than the minimum {low}",
    "maximum": lambda value, high: f"{value} is greater than the maximum {high}",
    "minItems": lambda _value, count: f"must have at least {count} item{'s' if count != 1 else ''}",
    "minLength": lambda value, length: f"{_show(value)} is shorter than {length} characters",
}


def _type_words(kind) -> str:
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(_ARTICLES[one] for one in kinds)


def _show(value, limit: int = 40) -> str:
    text = jsonio.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _choices(choices: list, limit: int = 60) -> str:
    shown = []
    for choice in choices:
        shown.append(jsonio.dumps(choice))
        if sum(len(s) + 2 for s in shown) > limit and len(shown) < len(choices):
            return f"[{', '.join(shown)}, ... ({len(choices)} values)]"
    return f"[{', '.join(shown)}]"


# The reference validator, with the jsonschema library.


def validate_with_jsonschema(config: dict, directory: str | None = None) -> None:
    """Same contract as validate(), checked by jsonschema (slow to import: tests and tools only)."""
    from jsonschema.exceptions import best_match

    check_version(config)
    error = best_match(jsonschema_validator(directory).iter_errors(config))
    if error is not None:
        while error.parent is not None and error.parent.validator in ("anyOf", "oneOf"):
            error = error.parent
        pointer, _keyword, rule = jsonschema_error(error)
        raise ConfigError(pointer, rule)
    check_rules(config)


def jsonschema_validator(directory: str | None = None, name: str = CONFIG_SCHEMA):
    """A Draft 2020-12 validator for spec/`name`, with the other spec/ files as its registry."""
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource

    directory = directory or schema_dir()
    resources = []
    for file in SCHEMA_FILES:
        with open(paths.join(directory, file), encoding="utf-8") as f:
            resources.append((SCHEMA_BASE_URI + file, Resource.from_contents(jsonio.load(f))))
    registry = Registry().with_resources(resources)
    strict = Draft202012Validator.TYPE_CHECKER.redefine("integer", lambda _checker, value: type(value) is int)
    cls = validators.extend(Draft202012Validator, type_checker=strict)
    return cls(registry.contents(SCHEMA_BASE_URI + name), registry=registry)


def jsonschema_error(error) -> tuple[str, str, str]:
    """(pointer, keyword, rule) of a jsonschema ValidationError, pointing where validate() would."""
    path = list(error.absolute_path)
    if error.validator == "required":
        path.append(next(key for key in error.validator_value if key not in error.instance))
    elif error.validator == "dependentRequired":
        path.append(
            next(
                other
                for key, needs in error.validator_value.items()
                if key in error.instance
                for other in needs
                if other not in error.instance
            )
        )
    # validate()'s words where it checks the keyword alike (`ocirt check` lists the library's
    # errors: "null is not a string", as create says it, not "None is not of type 'string'")
    words = WORDS.get(error.validator)
    if words is None:
        rule = " ".join(error.message.split())
    else:
        rule = words(error.instance, path[-1] if error.validator == "required" else error.validator_value)
        if "propertyNames" in error.absolute_schema_path:  # (a member's name, not its value)
            rule = f"key {rule}"
    return json_pointer(path), error.validator, rule if len(rule) <= 200 else rule[:197] + "..."
