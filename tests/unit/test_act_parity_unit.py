"""exec's and kill's command-line values as runc 1.1.5 takes them (no root needed)."""

import json

import pytest

from ocirt import execspec, signals
from ocirt.cli import UsageError
from ocirt.commands.exec import additional_gids
from ocirt.errors import OcirtError


@pytest.fixture
def bundle(tmp_path):
    caps = ["CAP_KILL"]
    proc = {
        "args": ["sh"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0},
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
    }
    (tmp_path / "config.json").write_text(json.dumps({"process": proc}))
    return str(tmp_path)


def test_cap_goes_to_three_sets_only(bundle):
    """CVE-2022-29162: --cap never reaches the inheritable set (nor ambient)."""
    opts = execspec.ExecOptions(caps=["CAP_SYS_ADMIN", "CAP_KILL"])
    caps = execspec.process_config(opts, ["true"], bundle)["capabilities"]
    for name in ("bounding", "effective", "permitted"):
        assert caps[name] == ["CAP_KILL", "CAP_SYS_ADMIN"]
    assert caps["inheritable"] == []
    assert caps["ambient"] == ["CAP_KILL"]


@pytest.mark.parametrize("cwd", ["tmp", "./tmp", "../"])
def test_relative_cwd_refused(bundle, cwd):
    with pytest.raises(OcirtError, match="^Cwd must be an absolute path$"):
        execspec.process_config(execspec.ExecOptions(cwd=cwd), ["pwd"], bundle)


def test_absolute_cwd_taken(bundle):
    assert execspec.process_config(execspec.ExecOptions(cwd="/tmp"), ["pwd"], bundle)["cwd"] == "/tmp"


@pytest.mark.parametrize(
    "item,message",
    [
        ("A", 'invalid environment variable: "A"'),
        ("=x", 'environment variable name can\'t be empty: "=x"'),
        ('q"\\', 'invalid environment variable: "q\\"\\\\"'),
    ],
)
def test_env_option_errors(bundle, item, message):
    with pytest.raises(OcirtError) as e:
        execspec.process_config(execspec.ExecOptions(env=[item]), ["true"], bundle)
    assert str(e.value) == message


def test_env_option_empty_value(bundle):
    proc = execspec.process_config(execspec.ExecOptions(env=["A=", "B=1=2"]), ["true"], bundle)
    assert proc["env"] == ["PATH=/bin", "A=", "B=1=2"]


@pytest.mark.parametrize("values,gids", [(["5", "010", "+7", "-1"], [5, 10, 7, -1]), ([3], [3]), ([], [])])
def test_additional_gids_parsed(values, gids):
    assert additional_gids(values) == gids


@pytest.mark.parametrize(
    "value,why",
    [
        ("abc", "invalid syntax"),
        ("0x5", "invalid syntax"),
        ("1_0", "invalid syntax"),
        ("", "invalid syntax"),
        (" 5", "invalid syntax"),
        ("٣", "invalid syntax"),
        ("9223372036854775808", "value out of range"),
        ("-9223372036854775809", "value out of range"),
    ],
)
def test_additional_gids_refused(value, why):
    with pytest.raises(UsageError) as e:
        additional_gids(["1", value])
    assert str(e.value) == (
        f'invalid value "{value}" for flag -additional-gids: strconv.ParseInt: parsing "{value}": {why}'
    )


def test_additional_gids_int64_bounds():
    assert additional_gids(["9223372036854775807", "-9223372036854775808"]) == [2**63 - 1, -(2**63)]


@pytest.mark.parametrize("text,num", [("+15", 15), ("+0", 0), ("010", 10)])
def test_signal_number_with_plus(text, num):
    assert signals.parse_signal(text) == num


@pytest.mark.parametrize("text", ["+", "++1", "+-1", "+٣", "٣", "+SIGTERM"])
def test_signal_not_a_number(text):
    with pytest.raises(OcirtError, match="unknown signal"):
        signals.parse_signal(text)


# (and what Python's int() takes but Go's strconv.Atoi, as runc reads them, does not: another
# script's digits, an underscore, a space; they ran the process as a uid the caller never wrote)
@pytest.mark.parametrize(
    "text", ["5:", ":5", "5:6:7", "root", "5:x", "", "\u0661", "1_0", " 1", "1 ", "\u0663:\u0663", "5:\u0663"]
)
def test_user_not_uid_gid(text):
    with pytest.raises(OcirtError, match=r"numeric uid\[:gid\] expected"):
        execspec.parse_user(text)


@pytest.mark.parametrize("text,ids", [("5", (5, None)), ("5:6", (5, 6)), ("0:0", (0, 0))])
def test_user_uid_gid(text, ids):
    assert execspec.parse_user(text) == ids
