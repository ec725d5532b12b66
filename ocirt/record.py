"""@record: dataclass-style classes for the hot path.

`ocirt create` must not import dataclasses: it pulls in inspect (~8 ms here), and each @dataclass
generates and exec()s code (~0.4 ms a class). @record reads the class annotations and installs
one shared __init__/__repr__/__eq__: same declarations, no code generation.

    @record
    class InitPid:
        pid: int
        names: list = field(default_factory=list)
"""

# typing is not imported at run time (the hot path); type checkers see dataclass_transform, so
# they know a @record class's __init__ as they know a dataclass's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:

    def dataclass_transform(**_kwargs):
        return lambda fn: fn


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


def field(default_factory: "Callable[[], Any]") -> "Any":
    return _Factory(default_factory)


def _init(self, *args, **kwargs):
    cls = type(self)
    names = cls.__record_fields__
    if len(args) > len(names):
        raise TypeError(f"{cls.__name__}() takes {len(names)} arguments, got {len(args)}")
    for name, value in zip(names, args):
        setattr(self, name, value)
    defaults = cls.__record_defaults__
    for name in names[len(args) :]:
        if name in kwargs:
            value = kwargs.pop(name)
        elif name in defaults:
            value = defaults[name]
            if isinstance(value, _Factory):
                value = value.make()
        else:
            raise TypeError(f"{cls.__name__}() missing argument {name!r}")
        setattr(self, name, value)
    if kwargs:
        raise TypeError(f"{cls.__name__}() got unexpected arguments {sorted(kwargs)}")


def _repr(self):
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__record_fields__)
    return f"{type(self).__name__}({inner})"


def _eq(self, other):
    if type(self) is not type(other):
        return NotImplemented
    return all(getattr(self, n) == getattr(other, n) for n in type(self).__record_fields__)


@dataclass_transform(eq_default=True, field_specifiers=(field,))
def record(cls: "type[_T]") -> "type[_T]":
    names: list[str] = []
    defaults: dict[str, Any] = {}
    for base in reversed(cls.__mro__[1:]):
        names += [n for n in getattr(base, "__record_fields__", ()) if n not in names]
        defaults.update(getattr(base, "__record_defaults__", {}))
    for name in cls.__dict__.get("__annotations__", {}):
        if name not in names:
            names.append(name)
        if name in cls.__dict__:
            defaults[name] = cls.__dict__[name]
            if isinstance(defaults[name], _Factory):
                delattr(cls, name)
    made: Any = cls  # the class gains its record methods here
    made.__record_fields__ = tuple(names)
    made.__record_defaults__ = defaults
    made.__init__ = _init
    made.__repr__ = _repr
    made.__eq__ = _eq
    made.__hash__ = None
    return cls


def fields(obj) -> tuple:
    """The field names of a record (class or instance), in order."""
    return obj.__record_fields__


def asdict(obj) -> dict:
    out = {}
    for name in obj.__record_fields__:
        value = getattr(obj, name)
        out[name] = asdict(value) if hasattr(value, "__record_fields__") else value
    return out
