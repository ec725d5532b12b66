"""Invalid configurations: `create` must fail (non-zero, a one-line error), name the offending
field (ocirt: its JSON pointer, e.g. /process/args) and leave nothing behind (runtime.md "Errors":
as if the operation were never attempted)."""

import os

import pytest
from runtime import assert_failed_cleanly

# Default config (tmp=False): 7 mounts, 5 namespaces (pid, network, ipc, uts, mount),
# 10 maskedPaths, 5 readonlyPaths, 2 env entries.


def drop(path):
    def mutate(c):
        *parents, last = path
        for k in parents:
            c = c[k]
        del c[last]

    return mutate


def put(path, value):
    def mutate(c):
        *parents, last = path
        for k in parents:
            c = c[k]
        c[last] = value() if callable(value) else value

    return mutate


def append(path, value):
    def mutate(c):
        for k in path:
            c = c[k]
        c.append(value)

    return mutate


def remove_ns(kind):
    def mutate(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != kind]

    return mutate


def userns_uid_only(c):
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


MULTILINE = "runc prints warning/fatal lines before its error line"

# id, mutate(config), JSON pointer(s) an ocirt error must name (None: no pointer), runc deviation
CASES = [
    ("args-missing", drop(["process", "args"]), "/process/args", None),
    ("args-empty", put(["process", "args"], []), "/process/args", None),
    ("args-not-array", put(["process", "args"], "true"), "/process/args", None),
    ("cwd-relative", put(["process", "cwd"], "tmp"), "/process/cwd", None),
    ("uid-not-int", put(["process", "user", "uid"], "x"), "/process/user/uid", None),
    (
        "additional-gids-not-array",
        put(["process", "user", "additionalGids"], "x"),
        "/process/user/additionalGids",
        None,
    ),
    ("env-without-equals", append(["process", "env"], "NOEQUALS"), "/process/env/2", None),
    (
        "rlimit-unknown-type",
        put(["process", "rlimits"], [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]),
        "/process/rlimits/0/type",
        None,
    ),
    (
        "rlimit-soft-above-hard",
        put(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 2}]),
        "/process/rlimits/0",
        None,
    ),
    (
        "rlimit-duplicated",
        put(
            ["process", "rlimits"],
            [
                {"type": "RLIMIT_NOFILE", "hard": 200, "soft": 200},
                {"type": "RLIMIT_NOFILE", "hard": 100, "soft": 100},
            ],
        ),
        "/process/rlimits/1",
        "runc 1.1.5 applies duplicated rlimits in order instead of failing "
        "(config.md: duplicated rlimits MUST generate an error)",
    ),
    ("oom-score-adj-out-of-range", put(["process", "oomScoreAdj"], 5000), "/process/oomScoreAdj", MULTILINE),
    (
        "ociversion-missing",
        drop(["ociVersion"]),
        "/ociVersion",
        "runc 1.1.5 does not check ociVersion (config.md: REQUIRED)",
    ),
    (
        "ociversion-not-semver",
        put(["ociVersion"], "banana"),
        "/ociVersion",
        "runc 1.1.5 does not check ociVersion (config.md: MUST be SemVer)",
    ),
    ("root-missing", drop(["root"]), "/root", None),
    ("root-path-missing", put(["root", "path"], "/nonexistent/rootfs"), "/root/path", None),
    ("hostname-without-uts-ns", remove_ns("uts"), "/hostname", None),
    (
        "mount-without-destination",
        append(["mounts"], {"type": "tmpfs", "source": "tmpfs"}),
        "/mounts/7/destination",
        MULTILINE,
    ),
    (
        "mount-options-not-array",
        append(["mounts"], {"destination": "/dev/x", "type": "tmpfs", "source": "tmpfs", "options": "ro"}),
        "/mounts/7/options",
        None,
    ),
    (
        "mount-unknown-fstype",
        append(["mounts"], {"destination": "/dev/x", "type": "bogusfs", "source": "none"}),
        "/mounts/7",
        None,
    ),
    (
        "namespace-unknown-type",
        append(["linux", "namespaces"], {"type": "bogus"}),
        "/linux/namespaces/5/type",
        None,
    ),
    ("namespace-duplicated", append(["linux", "namespaces"], {"type": "pid"}), "/linux/namespaces", None),
    (
        "namespace-path-relative",
        put(["linux", "namespaces", 1], {"type": "network", "path": "relative/ns"}),
        "/linux/namespaces/1/path",
        None,
    ),
    (
        "namespace-path-missing",
        put(["linux", "namespaces", 1], {"type": "network", "path": "/nonexistent/ns"}),
        "/linux/namespaces/1/path",
        None,
    ),
    (
        "namespace-path-wrong-type",
        put(["linux", "namespaces", 1], lambda: {"type": "network", "path": f"/proc/{os.getpid()}/ns/ipc"}),
        "/linux/namespaces/1/path",
        MULTILINE,
    ),
    (
        "uid-mappings-without-gid-mappings",
        userns_uid_only,
        ("/linux/gidMappings", "/linux/uidMappings"),
        None,
    ),
    (
        "device-unknown-type",
        put(["linux", "devices"], [{"path": "/dev/foo", "type": "x", "major": 1, "minor": 3}]),
        "/linux/devices/0/type",
        None,
    ),
    (
        "device-without-path",
        put(["linux", "devices"], [{"type": "c", "major": 1, "minor": 3}]),
        "/linux/devices/0/path",
        "runc 1.1.5 accepts a device without path (config-linux.md: path REQUIRED)",
    ),
    (
        "rootfs-propagation-unknown",
        put(["linux", "rootfsPropagation"], "bogus"),
        "/linux/rootfsPropagation",
        None,
    ),
    (
        "masked-path-relative",
        append(["linux", "maskedPaths"], "proc/x"),
        "/linux/maskedPaths/10",
        "runc 1.1.5 accepts relative maskedPaths (config-linux.md: MUST be absolute)",
    ),
    (
        "readonly-path-relative",
        append(["linux", "readonlyPaths"], "proc/x"),
        "/linux/readonlyPaths/5",
        "runc 1.1.5 accepts relative readonlyPaths (config-linux.md: MUST be absolute)",
    ),
    (
        "net-sysctl-in-host-netns",
        lambda c: (remove_ns("network")(c), c["linux"].__setitem__("sysctl", {"net.ipv4.ip_forward": "1"})),
        "/linux/sysctl",
        None,
    ),
    (
        "sysctl-not-namespaced",
        put(["linux", "sysctl"], {"kernel.bogus_not_namespaced": "1"}),
        "/linux/sysctl",
        None,
    ),
    (
        "effective-cap-not-permitted",
        put(
            ["process", "capabilities"],
            {"effective": ["CAP_KILL"], "permitted": [], "bounding": ["CAP_KILL"]},
        ),
        "/process/capabilities/effective/0",
        None,
    ),
]


def params():
    for cid, mutate, pointer, deviation in CASES:
        marks = [pytest.mark.runc_deviates(deviation)] if deviation else []
        yield pytest.param(mutate, pointer, id=cid, marks=marks)


@pytest.mark.parametrize("mutate,pointer", list(params()))
def test_invalid_config(rt, make_bundle, mutate, pointer):
    b = make_bundle(["true"], tmp=False, mutate=mutate)
    assert_failed_cleanly(rt, b, rt.create(b.id, b), pointer)


def test_config_not_json(rt, make_bundle):
    b = make_bundle(["true"])
    with open(os.path.join(b.path, "config.json"), "w") as f:
        f.write('{"ociVersion": ')
    assert_failed_cleanly(rt, b, rt.create(b.id, b))


def test_config_json_missing(rt, make_bundle):
    b = make_bundle(["true"])
    os.unlink(os.path.join(b.path, "config.json"))
    p = rt.create(b.id, b)
    assert "config.json" in p.stderr
    assert_failed_cleanly(rt, b, p)


def test_bundle_missing(rt, make_bundle, tmp_path):
    b = make_bundle(["true"])
    p = rt.create(b.id, tmp_path / "no-such-bundle")
    assert_failed_cleanly(rt, b, p)


def test_run_invalid_config(rt, make_bundle):
    """`run` validates like create and leaves nothing either."""
    b = make_bundle(["true"], tmp=False, mutate=put(["process", "cwd"], "tmp"))
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, "/process/cwd")


def test_config_change_after_create_has_no_effect(rt, make_bundle):
    """runtime.md: updates to config.json after create MUST NOT affect the container."""
    b = make_bundle(["sh", "-c", "exit 7"])
    assert rt.create(b.id, b).returncode == 0
    b.config["process"]["args"] = ["this-does-not-exist"]
    b.save()
    assert rt.start(b.id).returncode == 0
    rt.wait_status(b.id, "stopped")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(mounts=[m for m in c["mounts"] if m["destination"] != "/proc"]),
        lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "hard": 0, "soft": 0}]),
    ],
    ids=["no-proc-mount", "nofile-0"],
)
def test_init_that_cannot_reach_its_fifo_fails_create(rt, make_bundle, mutate):
    """An init that could not open exec.fifo for `start` (no /proc of the container's own, no fd
    left under RLIMIT_NOFILE) fails create, not the container after a create that said yes (runc
    fails create too, closing its fds through /proc/self/fd)."""
    b = make_bundle(["true"], mutate=mutate)
    assert_failed_cleanly(rt, b, rt.create(b.id, b))
