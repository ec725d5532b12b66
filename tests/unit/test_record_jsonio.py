"""ocirt/record.py and ocirt/jsonio.py: the stand-ins for dataclasses and json on the hot path."""

import json
import sys

import pytest

from ocirt import jsonio
from ocirt.record import asdict, field, record

TRAILING_COMMA_AT_COMMA = sys.version_info >= (3, 13)


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
    {},
    [],
    "",
    0,
    -1.5e300,
    True,
    None,
    {"a": [1, 2.5, {"é": '"quoted"\n\t\u2028'}]},
    {"nested": {"deep": [[], {}, [None, False]]}},
    "\x00\x1f",
    12345678901234567890,
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


@pytest.mark.parametrize(
    "text,line,column",
    [
        # C scanner errors need json.decoder: imported. A trailing comma: Python 3.13's decoder
        # names the comma itself, earlier ones what follows it
        ('{"a": 1,}', 1, 8 if TRAILING_COMMA_AT_COMMA else 9),
        ('{\n  "a": [1,\n]}', *((2, 10) if TRAILING_COMMA_AT_COMMA else (3, 1))),
        ('{"a" 1}', 1, 6),
        ("[1 2]", 1, 4),
        ('"\x00"', 1, 2),
        ("[" * 100000, 1, None),  # too deep: no RecursionError
        ('{"a":' * 50000, 1, None),
        (b"\xff", 1, 1),  # not UTF-8
        ("", 1, 1),
        ("{} x", 1, 4),
    ],
)
def test_jsonio_errors_name_line_and_column(text, line, column):
    with pytest.raises(jsonio.JSONError) as caught:
        jsonio.loads(text)
    e = caught.value
    assert isinstance(e, ValueError)
    assert e.lineno == line and (column is None or e.colno == column), str(e)
    assert str(e).startswith(f"line {e.lineno} column {e.colno}: ")
    if column is None:
        assert "nested too deeply" in str(e)


def test_jsonio_errors_agree_with_json():
    for text in ('{"a": 1,}', "[1, 2", '{"a": tru}', '["a\\q"]', '{"a": "b" "c"}'):
        with pytest.raises(json.JSONDecodeError) as expected:
            json.loads(text)
        with pytest.raises(jsonio.JSONError) as caught:
            jsonio.loads(text)
        assert (caught.value.msg, caught.value.pos) == (expected.value.msg, expected.value.pos)


@pytest.mark.parametrize("size", [0, 100, 32767, 32768, 65536, 100_000, 1_000_000])
def test_protocol_messages_of_any_size(size):
    """Messages larger than a packet (and than the socket buffer) pass whole, in chunks."""
    import threading

    from ocirt.protocol import Channel, Failed, Proceed

    a, b = Channel.pair()
    try:
        for msg in (Failed("x" * size, 2), Proceed({"big": "y" * size})):
            sender = threading.Thread(target=a.send, args=(msg,))
            sender.start()
            got = b.recv()
            sender.join()
            assert got == msg
    finally:
        a.close()
        b.close()


def test_protocol_hang_up_and_garbage():
    from ocirt.errors import OcirtError
    from ocirt.protocol import Channel

    a, b = Channel.pair()
    a.sock.send(b".not json")
    with pytest.raises(OcirtError, match="protocol error"):
        b.recv()
    a.sock.send(b'.{"type": "NoSuch"}')
    with pytest.raises(OcirtError, match="protocol error"):
        b.recv()
    a.sock.send(b"+{")
    a.close()
    with pytest.raises(OcirtError, match="cut short"):
        b.recv()
    assert b.recv() is None
    b.close()


def test_read_document_stops_at_a_device_that_never_ends():
    """/dev/zero and /dev/urandom as config.json: one block read, then loads says what is wrong."""
    import io

    for dev in ("/dev/zero", "/dev/urandom"):
        with open(dev, "rb") as f:
            data = jsonio.read_document(f)
        assert len(data) <= 1 << 16
        with pytest.raises(ValueError):
            jsonio.loads(data)
    assert jsonio.read_document(io.BytesIO(b' {"a": "\xc3\xa9"}')) == b' {"a": "\xc3\xa9"}'
    assert jsonio.read_document(io.StringIO('["x"]')) == '["x"]'
    assert jsonio.read_document(io.BytesIO(b"")) == b""


def test_read_document_refuses_past_its_limit(monkeypatch):
    import io

    monkeypatch.setattr(jsonio, "MAX_DOCUMENT", 1 << 17)
    with pytest.raises(ValueError, match="larger than"):
        jsonio.read_document(io.BytesIO(b"[" + b" " * (1 << 18) + b"]"))
    text = b"[" + b" " * 1000 + b"]"
    assert jsonio.read_document(io.BytesIO(text)) == text
