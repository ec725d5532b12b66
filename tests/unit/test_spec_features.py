"""`ocirt spec`, `ocirt features`, ocirt/spec_template.py and bundles/default/config.json (no root)."""

import json
import os

import pytest

import ocirt
from ocirt import capabilities, hooks, namespaces, rootfs
from ocirt.cli import main
from ocirt.spec_template import default_spec

try:
    from ocirt import validate as validate_mod
except ImportError:  # validate.py not written yet
    validate_mod = None

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE_CONFIG = os.path.join(REPO, "bundles", "default", "config.json")
needs_validate = pytest.mark.skipif(validate_mod is None, reason="ocirt/validate.py not present")


def ns_types(spec):
    return [n["type"] for n in spec["linux"]["namespaces"]]


def mount(spec, destination):
    (m,) = [m for m in spec["mounts"] if m["destination"] == destination]
    return m


# --- spec_template.default_spec ---------------------------------------------------------------


@needs_validate
@pytest.mark.parametrize("rootless", [False, True])
@pytest.mark.parametrize("cgroupns", [False, True, None])
def test_default_spec_validates(rootless, cgroupns):
    validate_mod.validate(default_spec(rootless, cgroupns=cgroupns))


def test_default_spec_matches_runc_semantics():
    s = default_spec(cgroupns=False)
    assert s["ociVersion"] == "1.3.0"
    assert s["hostname"] == "ocirt"
    assert s["root"] == {"path": "rootfs", "readonly": True}
    p = s["process"]
    assert p["terminal"] is True and p["args"] == ["sh"] and p["cwd"] == "/"
    assert p["user"] == {"uid": 0, "gid": 0}
    assert p["noNewPrivileges"] is True
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert p["capabilities"] == {"bounding": caps, "effective": caps, "permitted": caps}
    assert ns_types(s) == ["pid", "network", "ipc", "uts", "mount"]
    assert [m["destination"] for m in s["mounts"]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]
    assert mount(s, "/dev")["options"] == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert mount(s, "/sys")["type"] == "sysfs"
    assert "gid=5" in mount(s, "/dev/pts")["options"]
    assert mount(s, "/sys/fs/cgroup")["type"] == "cgroup" and "ro" in mount(s, "/sys/fs/cgroup")["options"]
    assert "options" not in mount(s, "/proc")
    assert "/proc/kcore" in s["linux"]["maskedPaths"] and "/sys/firmware" in s["linux"]["maskedPaths"]
    assert s["linux"]["readonlyPaths"] == [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    assert s["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "uidMappings" not in s["linux"]


def test_default_spec_rootless():
    s = default_spec(rootless=True, cgroupns=True)
    assert ns_types(s) == ["pid", "ipc", "uts", "mount", "cgroup", "user"]
    assert s["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert s["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert mount(s, "/sys") == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }
    assert not any(o.startswith(("gid=", "uid=")) for m in s["mounts"] for o in m.get("options", []))
    assert "resources" not in s["linux"]


def test_default_spec_cgroupns_and_args():
    assert "cgroup" in ns_types(default_spec(cgroupns=True))
    assert "cgroup" not in ns_types(default_spec(cgroupns=False))
    s = default_spec(args=("/bin/echo", "hi"))
    assert s["process"]["args"] == ["/bin/echo", "hi"]
    # each call builds fresh lists: editing one result leaves the next alone
    s["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    s["linux"]["maskedPaths"].clear()
    t = default_spec()
    assert "CAP_SYS_ADMIN" not in t["process"]["capabilities"]["bounding"]
    assert t["linux"]["maskedPaths"] and t["process"]["args"] == ["sh"]


# --- ocirt spec --------------------------------------------------------------------------------


def test_spec_writes_config_in_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["spec"]) == 0
    text = (tmp_path / "config.json").read_text()
    assert text.startswith('{\n\t"ociVersion": "1.3.0",')  # tab-indented like runc spec
    written = json.loads(text)
    assert written == default_spec()
    if validate_mod is not None:
        validate_mod.validate(written)
    assert capsys.readouterr().out == ""


def test_spec_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert main(["spec"]) == 1
    assert "File config.json exists. Remove it first" in capsys.readouterr().err
    assert (tmp_path / "config.json").read_text() == "{}"


def test_spec_refuses_dangling_symlink(tmp_path, capsys):
    target = tmp_path / "elsewhere.json"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").symlink_to(target)
    assert main(["spec", "--bundle", str(tmp_path / "b")]) == 1
    assert "exists" in capsys.readouterr().err
    assert not target.exists()


@pytest.mark.parametrize("flag", [["--bundle", "{}"], ["-b", "{}"], ["--bundle={}"]])
def test_spec_bundle_flag(tmp_path, monkeypatch, flag):
    monkeypatch.chdir(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    assert main(["spec"] + [f.format(bundle) for f in flag]) == 0
    assert (bundle / "config.json").is_file()
    assert not (tmp_path / "config.json").exists()
    assert main(["spec"] + [f.format(bundle) for f in flag]) == 1


def test_spec_bundle_missing(tmp_path, capsys):
    assert main(["spec", "--bundle", str(tmp_path / "nope")]) == 1
    assert f"chdir {tmp_path / 'nope'}: no such file or directory" in capsys.readouterr().err


def test_spec_rootless(tmp_path):
    assert main(["spec", "--rootless", "-b", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "config.json").read_text())
    assert written == default_spec(rootless=True)
    assert "network" not in ns_types(written) and "user" in ns_types(written)
    if validate_mod is not None:
        validate_mod.validate(written)


def test_spec_rejects_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["spec", "extra"]) == 1
    assert "requires exactly 0 argument(s)" in capsys.readouterr().err
    assert not (tmp_path / "config.json").exists()


# --- ocirt features ----------------------------------------------------------------------------


def run_features(capsys):
    assert main(["features"]) == 0
    out = capsys.readouterr().out
    return out, json.loads(out)


def test_features_json(capsys):
    out, f = run_features(capsys)
    assert out.startswith('{\n    "ociVersionMin"')  # indent 4 like runc features
    assert f["ociVersionMin"] == "1.0.0" and f["ociVersionMax"] == "1.3.0"
    assert f["hooks"] == list(hooks.HOOK_NAMES)
    expected = (
        set(rootfs.FLAG_OPTIONS)
        | set(rootfs.PROPAGATION_OPTIONS)
        | set(rootfs.RECURSIVE_OPTIONS)
        | {"idmap", "ridmap", "tmpcopyup"}
    )
    assert f["mountOptions"] == sorted(expected)
    linux = f["linux"]
    assert linux["namespaces"] == sorted(namespaces.FLAGS)
    assert set(linux["capabilities"]) == set(capabilities.NUMBERS)
    assert linux["capabilities"][0] == "CAP_CHOWN"  # numeric order, as runc lists them
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True}
    from ocirt import seccomp

    assert linux["seccomp"] == seccomp.features()  # what this libseccomp and kernel can do
    if linux["seccomp"]["enabled"]:
        assert "SCMP_ACT_NOTIFY" in linux["seccomp"]["actions"]
    # what ocirt implements, whatever the host has (features-linux.md), as runc reports them
    assert linux["apparmor"] == {"enabled": True}
    assert linux["selinux"] == {"enabled": True}
    assert linux["intelRdt"]["enabled"] is False
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}}
    assert f["annotations"] == {"io.ocirt.version": ocirt.__version__}


@needs_validate
def test_features_validates_against_schema(capsys):
    _, f = run_features(capsys)
    assert validate_mod.first_error(f, validate_mod.Schemas(), "features-schema.json") is None


def test_features_claims_only_what_default_spec_uses(capsys):
    """Everything the starter spec asks for is something features says ocirt understands."""
    _, f = run_features(capsys)
    for spec in (default_spec(cgroupns=True), default_spec(rootless=True, cgroupns=True)):
        assert set(ns_types(spec)) <= set(f["linux"]["namespaces"])
        for caps in spec["process"]["capabilities"].values():
            assert set(caps) <= set(f["linux"]["capabilities"])
        flag_like = set(f["mountOptions"])
        for m in spec["mounts"]:
            for opt in m.get("options", []):
                assert "=" in opt or opt in flag_like or opt == "newinstance", opt


# --- bundles/default/config.json ---------------------------------------------------------------


def test_default_bundle_config():
    with open(BUNDLE_CONFIG) as fh:
        cfg = json.load(fh)
    if validate_mod is not None:
        validate_mod.validate(cfg)
    assert cfg["process"]["terminal"] is False
    assert cfg["process"]["args"][:2] == ["/bin/sh", "-c"] and "Hello from ocirt" in cfg["process"]["args"][2]
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert cfg["hostname"] == "ocirt"
    expected = default_spec(args=cfg["process"]["args"], cgroupns=True)
    expected["process"]["terminal"] = False
    assert cfg == expected


def test_features_built_by_the_core(capsys):
    """`ocirt features` prints the core's document (ocirt/features_doc.py); the API returns it."""
    import ocirt.api
    from ocirt import features_doc

    _, f = run_features(capsys)
    assert f == features_doc.features() == ocirt.api.features()
    assert f["ociVersionMax"] == ocirt.SPEC_VERSION
