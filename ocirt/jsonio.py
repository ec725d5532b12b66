"""JSON through the C accelerator `_json`, without the json package.

`import json` pulls in re and enum: ~7 ms in a fresh interpreter, a third of what `ocirt state`
costs. The package is a thin layer over `_json` (scanner and encoder in C); this is the same
layer, for what ocirt reads and writes: strict JSON (no NaN/Infinity), UTF-8 text.
"""
from __future__ import annotations

import _json


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


class _Decoder:  # the attributes _json.make_scanner reads off a json.JSONDecoder
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constants)


_scan = _json.make_scanner(_Decoder)
_WS = " \t\n\r"
_str = _json.encode_basestring  # non-ASCII stays as it is: the output is UTF-8


def _default(o):
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _str, None, ": ", ", ", False, False, False)


def loads(text: str | bytes):
    """Decode one JSON document; ValueError (json.JSONDecodeError) when it is not one."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    end = len(text)
    i = 0
    while i < end and text[i] in _WS:
        i += 1
    try:
        value, i = _scan(text, i)
    except StopIteration as e:
        raise ValueError(f"Expecting value: char {e.value}") from None
    while i < end and text[i] in _WS:
        i += 1
    if i != end:
        raise ValueError(f"Extra data: char {i}")
    return value


def dumps(value, indent: str | None = None) -> str:
    """Compact JSON; with `indent`, one member per line (as json.dumps(indent=...))."""
    if indent is None:
        return "".join(_encode(value, 0))
    return _pretty(value, indent, "")


def _pretty(value, indent: str, pad: str) -> str:
    inner = pad + indent
    if isinstance(value, dict) and value:
        items = (f"{inner}{_str(str(k))}: {_pretty(v, indent, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and value:
        items = (inner + _pretty(v, indent, inner) for v in value)
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return dumps(value)


def load(f):
    return loads(f.read())
