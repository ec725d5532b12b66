"""ocirt/record.py and ocirt/jsonio.py: the stand-ins for dataclasses and json on the hot path."""
import json

import pytest

from ocirt import jsonio
from ocirt.record import asdict, field, record


@record
class Point:
    x: int
    y: int = 0
    tags: list = field(default_factory=list)


@record
class Point3(Point):
    z: int = 0


def test_record_init_defaults_and_fresh_factories():
    a, b = Point(1), Point(2, 3)
    assert (a.x, a.y, a.tags) == (1, 0, []) and (b.x, b.y) == (2, 3)
    a.tags.append("t")
    assert Point(1).tags == []  # a new list each time
    assert Point(1, tags=["t"]) == a and Point(1) != a
    assert repr(b) == "Point(x=2, y=3, tags=[])"


def test_record_errors_and_inheritance():
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected"):
        Point(1, w=2)
    p = Point3(1, 2, z=3)
    assert asdict(p) == {"x": 1, "y": 2, "tags": [], "z": 3}


SAMPLES = [
    {}, [], "", 0, -1.5e300, True, None, {"a": [1, 2.5, {"é": "\"quoted\"\n\t\u2028"}]},
    {"nested": {"deep": [[], {}, [None, False]]}}, "\x00\x1f", 12345678901234567890,
]


@pytest.mark.parametrize("value", SAMPLES)
def test_jsonio_matches_json(value):
    text = jsonio.dumps(value)
    assert text == json.dumps(value, ensure_ascii=False)
    assert jsonio.loads(text) == value
    assert jsonio.dumps(value, indent="  ") == json.dumps(value, indent="  ", ensure_ascii=False)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "NaN", "Infinity", "{} x", "{'a': 1}", "01"])
def test_jsonio_refuses_what_is_not_json(text):
    with pytest.raises(ValueError):
        jsonio.loads(text)


def test_jsonio_refuses_what_it_cannot_encode():
    with pytest.raises(TypeError):
        jsonio.dumps({"a": object()})
    with pytest.raises(ValueError):
        jsonio.dumps(float("nan"))
