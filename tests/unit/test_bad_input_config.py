"""Bad input gets a one-line error naming what is wrong: ids the kernel would misread, too many
groups, device numbers beyond a dev_t, names beyond the kernel's 64 bytes, numbers JSON cannot
carry, exec's process file, and the checks `create` and `ocirt check` share."""

from __future__ import annotations

import copy
import json

import pytest

from ocirt import checks, config, execspec, jsonio, namespaces, process
from ocirt.errors import ConfigError, OcirtError
from ocirt.validate import validate, validate_with_jsonschema

BASE = {
    "ociVersion": "1.0.2",
    "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
    "root": {"path": "rootfs"},
    "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}]},
}


def with_(change) -> dict:
    cfg = copy.deepcopy(BASE)
    change(cfg)
    return cfg


def both_refuse(cfg: dict, pointer: str) -> None:
    """The fast validator and the jsonschema one refuse `cfg` at `pointer`."""
    for check in (validate, validate_with_jsonschema):
        with pytest.raises(ConfigError) as e:
            check(cfg)
        assert e.value.pointer == pointer, check


# ---------------------------------------------------------------- ids and groups


@pytest.mark.parametrize(
    "user,pointer",
    [
        ({"uid": 4294967295, "gid": 0}, "/process/user/uid"),
        ({"uid": 0, "gid": 4294967295}, "/process/user/gid"),
        ({"uid": 0, "gid": 0, "additionalGids": [5, 4294967295]}, "/process/user/additionalGids/1"),
        ({"uid": 0, "gid": 0, "additionalGids": list(range(65537))}, "/process/user/additionalGids"),
    ],
)
def test_ids_the_kernel_misreads(user, pointer):
    spec = process.ProcessSpec.from_config({"args": ["id"], "user": user})
    with pytest.raises(ConfigError) as e:
        spec.check()
    assert e.value.pointer == pointer
    assert str(e.value).startswith(f"config.json: {pointer}: ")


def test_largest_ids_and_group_count_pass():
    user = {"uid": 4294967294, "gid": 4294967294, "additionalGids": list(range(65536))}
    process.ProcessSpec.from_config({"args": ["id"], "user": user}).check()


@pytest.mark.parametrize("text", ["-1", "4294967295", "1099511627776", "0:-1", "0:4294967295"])
def test_exec_user_out_of_range(text):
    with pytest.raises(OcirtError) as e:
        execspec.parse_user(text)
    assert e.value.message.startswith("invalid --user")
    assert "\n" not in e.value.message


def test_exec_user_largest():
    assert execspec.parse_user("4294967294:4294967294") == (4294967294, 4294967294)


@pytest.mark.parametrize(
    "opts,flag",
    [
        (execspec.ExecOptions(uid=-1), "--user"),
        (execspec.ExecOptions(gid=4294967295), "--user"),
        (execspec.ExecOptions(additional_gids=[-1]), "--additional-gids"),
        (execspec.ExecOptions(additional_gids=list(range(65537))), "--additional-gids"),
    ],
)
def test_exec_options_out_of_range(tmp_path, opts, flag):
    (tmp_path / "config.json").write_text(json.dumps(BASE))
    with pytest.raises(OcirtError) as e:
        execspec.process_config(opts, ["id"], str(tmp_path))
    assert flag in e.value.message


# ---------------------------------------------------------------- exec's process file


def exec_spec(tmp_path, data: bytes):
    path = tmp_path / "proc.json"
    path.write_bytes(data)
    opts = execspec.ExecOptions(process_file=str(path))
    return str(path), lambda: execspec.process_spec(execspec.process_config(opts, [], str(tmp_path)), opts)


@pytest.mark.parametrize(
    "proc,pointer",
    [
        ({"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}, "/rlimits/0/type"),
        ({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]}, "/rlimits/0"),
        ({"user": {"uid": 4294967295, "gid": 0}}, "/user/uid"),
        ({"env": ["NOEQUALS"]}, "/env/0"),
        ({"args": []}, "/args"),
    ],
)
def test_process_file_errors_name_the_file(tmp_path, proc, pointer):
    doc = {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, **proc}
    _, make = exec_spec(tmp_path, json.dumps(doc).encode())
    with pytest.raises(ConfigError) as e:
        make()
    assert str(e.value) == f"process.json: {pointer}: {e.value.rule}"


@pytest.mark.parametrize("data", [b'{"args": ["\xff"]}', b'{"args": [1e400]}', b"[NaN]", b"[1, 2"])
def test_process_file_not_json(tmp_path, data):
    path, make = exec_spec(tmp_path, data)
    with pytest.raises(OcirtError) as e:
        make()
    message = str(e.value)
    assert message.startswith(f"{path}: invalid JSON: line 1 column "), message
    assert "codec" not in message and "\n" not in message


def test_process_file_not_an_object(tmp_path):
    _, make = exec_spec(tmp_path, b"[1]")
    with pytest.raises(ConfigError, match="^process.json: /: must be an object$"):
        make()


# ---------------------------------------------------------------- devices, hostname, domainname


@pytest.mark.parametrize(
    "major,minor,pointer",
    [
        (-1, 3, "/linux/devices/0/major"),
        (2**40, 3, "/linux/devices/0/major"),
        (4096, 3, "/linux/devices/0/major"),
        (1, -1, "/linux/devices/0/minor"),
        (1, 2**20, "/linux/devices/0/minor"),
        (1, 2**40, "/linux/devices/0/minor"),
    ],
)
def test_device_numbers_beyond_dev_t(major, minor, pointer):
    dev = {"path": "/dev/x", "type": "c", "major": major, "minor": minor}
    both_refuse(with_(lambda c: c["linux"].__setitem__("devices", [dev])), pointer)


def test_device_numbers_largest():
    dev = {"path": "/dev/x", "type": "c", "major": 4095, "minor": 1048575}
    validate(with_(lambda c: c["linux"].__setitem__("devices", [dev, {"path": "/dev/p", "type": "p"}])))


@pytest.mark.parametrize("key", ["hostname", "domainname"])
def test_uts_names_beyond_64_bytes(key):
    validate(with_(lambda c: c.__setitem__(key, "a" * 64)))
    validate(with_(lambda c: c.__setitem__(key, "é" * 32)))
    both_refuse(with_(lambda c: c.__setitem__(key, "a" * 65)), f"/{key}")
    both_refuse(with_(lambda c: c.__setitem__(key, "é" * 33)), f"/{key}")  # 66 bytes


# ---------------------------------------------------------------- JSON numbers and constants


@pytest.mark.parametrize(
    "text,line,column,what",
    [
        ('{"a": [1,\n  2e400]}', 2, 3, "number out of range"),
        ('{"x": "1e400", "b": -1e400}', 1, 21, "number out of range"),
        ('{"a": "NaN",\n "b": NaN}', 2, 7, "NaN is not JSON"),
        ("[1, Infinity]", 1, 5, "Infinity is not JSON"),
        ('{"a":\n\n -Infinity}', 3, 2, "-Infinity is not JSON"),
        ("[1,\n " + "9" * 5000 + "]", 2, 2, "integer with too many digits"),
    ],
)
def test_json_numbers_refused_where_they_are(text, line, column, what):
    with pytest.raises(jsonio.JSONError) as e:
        jsonio.loads(text)
    assert (e.value.lineno, e.value.colno, e.value.msg) == (line, column, what)
    assert "sys." not in str(e.value)


def test_json_numbers_that_fit():
    assert jsonio.loads("[1.5, 1e-400, 18446744073709551615, 1e308]") == [1.5, 0.0, 2**64 - 1, 1e308]


def test_config_load_names_the_place(tmp_path):
    cfg = json.dumps(BASE).replace(
        '"cwd": "/"', '"cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1e400'
    )
    (tmp_path / "config.json").write_text(cfg + ', "soft": 1}]}')
    with pytest.raises(OcirtError, match=r"invalid JSON: line 1 column \d+: number out of range$"):
        config.load(str(tmp_path))


# ---------------------------------------------------------------- what create and check share


def test_static_checks():
    def refuses(cfg, pointer, systemd=False):
        with pytest.raises(ConfigError) as e:
            checks.check_static(cfg, namespaces.parse(cfg), systemd)
        assert e.value.pointer == pointer

    for path in ("/", "/a/..", ".", "/../.."):
        refuses(with_(lambda c, p=path: c["linux"].__setitem__("cgroupsPath", p)), "/linux/cgroupsPath")
    checks.check_static(
        with_(lambda c: c["linux"].__setitem__("cgroupsPath", "/")), namespaces.parse(BASE), True
    )
    checks.check_static(with_(lambda c: c["linux"].__setitem__("cgroupsPath", "/a")), namespaces.parse(BASE))

    def no_mount_ns(c):
        c["linux"]["namespaces"] = [{"type": "uts"}]
        c["mounts"] = [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}]

    refuses(with_(no_mount_ns), "/mounts/0")


def test_rootfs_path_with_nul():
    with pytest.raises(ConfigError) as e:
        config.rootfs_path("/b", {"root": {"path": "root\x00fs"}})
    assert e.value.pointer == "/root/path"
