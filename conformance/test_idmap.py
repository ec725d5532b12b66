"""Idmapped mounts: the `idmap`/`ridmap` mount options and a mount's uidMappings/gidMappings
(config.md "Mounts"; features.md mountExtensions.idmap).

A mapping {containerID C, hostID H, size S} is a user namespace's uid_map line "C H S": through
the mount, a file the filesystem says is owned by C+i shows as H+i (as the host's kernel sees it),
and a file made through the mount by H+i lands on the filesystem as C+i. So with the container's
own user namespace mapping (0 -> 100000), host files owned by 0 show as 0 inside the container.
"""

import errno
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from runtime import assert_failed_cleanly, ok, sh

RUNC_PREDATES = "runc 1.1.5 predates idmapped mounts (runc 1.2)"
USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
TO_100000 = [{"containerID": 0, "hostID": 100000, "size": 65536}]  # fs 0 -> 100000
FROM_100000 = [{"containerID": 100000, "hostID": 0, "size": 65536}]  # fs 100000 -> 0


def userns(c):
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = USERNS_MAP
    c["linux"]["gidMappings"] = USERNS_MAP


def idmapped(src, dest, *options, uid=None, gid=None):
    m = {
        "destination": dest,
        "type": "bind",
        "source": str(src),
        "options": list(options) or ["rbind", "idmap"],
    }
    if uid is not None:
        m["uidMappings"] = uid
    if gid is not None or uid is not None:
        m["gidMappings"] = gid if gid is not None else uid
    return m


def mounts(*entries, user_ns=False):
    def mutate(c):
        if user_ns:
            userns(c)
        c["mounts"].extend(entries)

    return mutate


def owners(*paths):
    """Shell: `path uid gid` per path, as the container sees them."""
    return "; ".join(f"stat -c '%n %u %g' {p}" for p in paths)


def parse_owners(out):
    return {
        line.split()[0]: tuple(int(x) for x in line.split()[1:3])
        for line in out.splitlines()
        if line.startswith("/")
    }


def _host_can_idmap(path):
    """Can the kernel give a mount of `path`'s filesystem an idmapping? (tmpfs only since Linux
    6.3, for one.) Asked of the kernel directly: open_tree + mount_setattr(MOUNT_ATTR_IDMAP) with
    the user namespace of a helper `unshare --user --map-root-user`."""
    import ctypes

    nr = {"x86_64": (428, 442), "aarch64": (428, 442)}.get(os.uname().machine)
    if nr is None:
        return True  # unknown arch: let the tests say
    libc = ctypes.CDLL(None, use_errno=True)
    helper = subprocess.Popen(["unshare", "--user", "--map-root-user", "sleep", "30"])
    try:
        for _ in range(500):  # the new user namespace, and its uid map written (after the unshare)
            if os.readlink(f"/proc/{helper.pid}/ns/user") != os.readlink("/proc/self/ns/user"):
                with open(f"/proc/{helper.pid}/uid_map") as f:
                    if f.read().strip():
                        break
            time.sleep(0.01)
        userns = os.open(f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        tree = libc.syscall(nr[0], -100, path.encode(), 1 | 0o2000000)  # OPEN_TREE_CLONE|CLOEXEC
        if tree < 0:
            os.close(userns)
            return True
        attr = (ctypes.c_uint64 * 4)(0x00100000, 0, 0, userns)  # attr_set: MOUNT_ATTR_IDMAP
        ok = libc.syscall(nr[1], tree, b"", 0x1000, attr, 32) == 0  # AT_EMPTY_PATH
        err = ctypes.get_errno()
        os.close(tree)
        os.close(userns)
        return ok or err != errno.EINVAL
    finally:
        helper.kill()
        helper.wait()


@pytest.fixture
def hostdir():
    """A host directory (in a 0755 place: a user-namespaced init must be able to reach it)
    with files `root` (0:0), `user` (1000:1000) and directories `w0/` (0:0), `w100000/`
    (100000:100000), `u/` (1000:1000). The kernel lets nobody write in a directory whose owner
    has no id through an idmapped mount: each test writes in one its mapping covers."""
    base = tempfile.mkdtemp(prefix="ocirt-idmap-")
    os.chmod(base, 0o755)
    if not _host_can_idmap(base):
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"this kernel cannot idmap the filesystem of {base} (tmpfs before 6.3?)")
    d = os.path.join(base, "hostdir")
    os.mkdir(d)
    for name, uid in (("root", 0), ("user", 1000)):
        with open(os.path.join(d, name), "w") as f:
            f.write(name + "\n")
        os.chown(os.path.join(d, name), uid, uid)
    for name, uid, mode in (("w0", 0, 0o777), ("w100000", 100000, 0o777), ("u", 1000, 0o755)):
        os.mkdir(os.path.join(d, name))
        os.chown(os.path.join(d, name), uid, uid)
        os.chmod(os.path.join(d, name), mode)
    yield d
    with open("/proc/self/mountinfo") as f:
        left = [ln.split()[4] for ln in f if ln.split()[4].startswith(base + "/")]
    for mp in sorted(left, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def nested(hostdir):
    """hostdir/nested: a tmpfs mounted on the host, holding `file` (0:0)."""
    mp = os.path.join(hostdir, "nested")
    os.mkdir(mp)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "tmpfs", mp], check=True)
    subprocess.run(["mount", "--make-private", mp], check=True)
    with open(os.path.join(mp, "file"), "w") as f:
        f.write("nested\n")
    yield mp
    subprocess.run(["umount", "-l", mp], check=False)


def host_owner(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid


# ---- owners through the mount ---------------------------------------------------------------------


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_mount_mapping_shows_mapped_owners(run_in, hostdir):
    out = ok(
        run_in(
            sh(owners("/tmp/data/root", "/tmp/data/user")),
            mutate=mounts(idmapped(hostdir, "/tmp/data", "rbind", "idmap", uid=TO_100000)),
        )
    )
    assert parse_owners(out) == {"/tmp/data/root": (100000, 100000), "/tmp/data/user": (101000, 101000)}


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_file_made_through_the_mount_lands_mapped(run_in, hostdir):
    """fs 100000 -> 0: root's new file lands as 100000 on the host; host 0 and 1000 are outside
    the mapping (they show as the overflow id)."""
    out = ok(
        run_in(
            sh(
                owners("/tmp/data/root", "/tmp/data/user")
                + "; echo x > /tmp/data/w100000/new; "
                + owners("/tmp/data/w100000/new")
            ),
            mutate=mounts(idmapped(hostdir, "/tmp/data", "bind", "idmap", uid=FROM_100000)),
        )
    )
    assert parse_owners(out) == {
        "/tmp/data/root": (65534, 65534),
        "/tmp/data/user": (65534, 65534),
        "/tmp/data/w100000/new": (0, 0),
    }
    assert host_owner(os.path.join(hostdir, "w100000", "new")) == (100000, 100000)


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_unmapped_writer_is_refused(run_in, hostdir):
    """fs 0 -> 100000: root (0) has no id on the filesystem through this mount: the kernel refuses
    to make a file; 101000 (fs 1000) can write in u/ (1000's) and its file lands as 1000."""
    script = "touch /tmp/data/w0/by-root 2>/dev/null && echo ROOT-WROTE; " + owners("/tmp/data/u")
    out = ok(
        run_in(sh(script), mutate=mounts(idmapped(hostdir, "/tmp/data", "idmap", "bind", uid=TO_100000)))
    )
    assert "ROOT-WROTE" not in out
    assert parse_owners(out) == {"/tmp/data/u": (101000, 101000)}
    assert not os.path.exists(os.path.join(hostdir, "w0", "by-root"))

    def as_101000(c):
        mounts(idmapped(hostdir, "/tmp/data", "idmap", "bind", uid=TO_100000))(c)
        c["process"]["user"] = {"uid": 101000, "gid": 101000}

    ok(run_in(sh("echo y > /tmp/data/u/by-user"), mutate=as_101000))
    assert host_owner(os.path.join(hostdir, "u", "by-user")) == (1000, 1000)


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_mappings_without_option_are_applied(run_in, hostdir):
    """uidMappings/gidMappings without idmap/ridmap: applied (the options are there so that older
    runtimes do not ignore the mappings silently; a runtime that knows them does not)."""
    m = idmapped(hostdir, "/tmp/data", "rbind", uid=TO_100000)
    out = ok(run_in(sh(owners("/tmp/data/root")), mutate=mounts(m)))
    assert parse_owners(out) == {"/tmp/data/root": (100000, 100000)}


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_file_bind(run_in, hostdir):
    m = idmapped(os.path.join(hostdir, "root"), "/tmp/idmapped-file", "bind", "idmap", uid=TO_100000)
    out = ok(run_in(sh("cat /tmp/idmapped-file; " + owners("/tmp/idmapped-file")), mutate=mounts(m)))
    assert out.startswith("root\n")
    assert parse_owners(out) == {"/tmp/idmapped-file": (100000, 100000)}


# ---- with a container user namespace ------------------------------------------------------------


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_uses_container_user_namespace(run_in, hostdir):
    """No mappings on the mount: the container's (0 -> 100000). Host 0 and 1000 show as 0 and
    1000 inside; root's new file lands as 0 on the host. A plain bind beside it shows nobody."""
    out = ok(
        run_in(
            sh(
                owners("/tmp/data/root", "/tmp/data/user", "/tmp/plain/root")
                + "; echo x > /tmp/data/w0/new; "
                + owners("/tmp/data/w0/new")
            ),
            mutate=mounts(
                idmapped(hostdir, "/tmp/data", "rbind", "idmap"),
                {"destination": "/tmp/plain", "type": "bind", "source": hostdir, "options": ["rbind"]},
                user_ns=True,
            ),
        )
    )
    assert parse_owners(out) == {
        "/tmp/data/root": (0, 0),
        "/tmp/data/user": (1000, 1000),
        "/tmp/plain/root": (65534, 65534),
        "/tmp/data/w0/new": (0, 0),
    }
    assert host_owner(os.path.join(hostdir, "w0", "new")) == (0, 0)


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_mount_mapping_wins_over_user_namespace(run_in, hostdir):
    """The mount's own mapping is used even in a user namespace: fs 0 -> host 101000, which the
    container (0 -> 100000) sees as 1000."""
    one = [{"containerID": 0, "hostID": 101000, "size": 1}]
    out = ok(
        run_in(
            sh(owners("/tmp/data/root", "/tmp/data/user")),
            mutate=mounts(idmapped(hostdir, "/tmp/data", "bind", "idmap", uid=one), user_ns=True),
        )
    )
    assert parse_owners(out) == {"/tmp/data/root": (1000, 1000), "/tmp/data/user": (65534, 65534)}


# ---- recursion: rbind with idmap / ridmap ----------------------------------------------------------


@pytest.mark.runc_deviates(RUNC_PREDATES)
@pytest.mark.parametrize("option,nested_owner", [("idmap", 0), ("ridmap", 100000)])
def test_idmap_recursion_over_nested_mount(run_in, hostdir, nested, option, nested_owner):
    """rbind brings the nested tmpfs along; idmap maps the top mount only, ridmap the whole tree."""
    out = ok(
        run_in(
            sh("cat /tmp/data/nested/file; " + owners("/tmp/data/root", "/tmp/data/nested/file")),
            mutate=mounts(idmapped(hostdir, "/tmp/data", "rbind", option, uid=TO_100000)),
        )
    )
    assert out.startswith("nested\n")
    assert parse_owners(out) == {
        "/tmp/data/root": (100000, 100000),
        "/tmp/data/nested/file": (nested_owner, nested_owner),
    }


# ---- other options on the same mount --------------------------------------------------------------


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_with_other_options(run_in, hostdir):
    """fs 100000 -> 0: root could write in w100000/, but for `ro`."""
    m = idmapped(
        hostdir, "/tmp/data", "rbind", "idmap", "ro", "nosuid", "nodev", "noexec", "rprivate", uid=FROM_100000
    )
    script = (
        "touch /tmp/data/w100000/x 2>/dev/null && echo WROTE; "
        "awk '$5 == \"/tmp/data\"' /proc/self/mountinfo | tail -n 1; " + owners("/tmp/data/root")
    )
    out = ok(run_in(sh(script), mutate=mounts(m)))
    assert "WROTE" not in out
    line = [ln for ln in out.splitlines() if " /tmp/data " in ln][0].split()
    options = set(line[5].split(","))
    assert {"ro", "nosuid", "nodev", "noexec", "idmapped"} <= options
    assert not any(f.startswith(("shared:", "master:")) for f in line[6 : line.index("-")])
    assert parse_owners(out) == {"/tmp/data/root": (65534, 65534)}
    assert not os.path.exists(os.path.join(hostdir, "w100000", "x"))


@pytest.mark.runc_deviates(RUNC_PREDATES)
def test_idmap_recursive_readonly_in_user_namespace(run_in, hostdir, nested):
    m = idmapped(hostdir, "/tmp/data", "rbind", "ridmap", "rro")
    out = ok(
        run_in(
            sh(
                "touch /tmp/data/nested/x 2>/dev/null && echo WROTE; "
                + owners("/tmp/data/root", "/tmp/data/nested/file")
            ),
            mutate=mounts(m, user_ns=True),
        )
    )
    assert "WROTE" not in out
    assert parse_owners(out) == {"/tmp/data/root": (0, 0), "/tmp/data/nested/file": (0, 0)}


# ---- errors ----------------------------------------------------------------------------------------


def test_features_idmap_enabled(rt):
    p = rt("features", root=False)
    if rt.is_runc:
        pytest.skip("runc 1.1.5's features predate mountExtensions")
    f = json.loads(ok(p))
    assert f["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert {"idmap", "ridmap"} <= set(f["mountOptions"])


ERRORS = [  # (id, mount, pointer, runc 1.1.5 accepts it: it ignores idmap and the mappings)
    ("no-mapping-no-userns", lambda d: idmapped(d, "/tmp/data", "rbind", "idmap"), "/mounts/8/options", True),
    (
        "not-a-bind",
        lambda d: {
            "destination": "/tmp/data",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["idmap"],
            "uidMappings": TO_100000,
            "gidMappings": TO_100000,
        },
        "/mounts/8/options",
        False,
    ),
    (
        "size-zero",
        lambda d: idmapped(
            d, "/tmp/data", "bind", "idmap", uid=[{"containerID": 0, "hostID": 100000, "size": 0}]
        ),
        "/mounts/8/uidMappings/0/size",
        True,
    ),
    (
        "overlap",
        lambda d: idmapped(
            d,
            "/tmp/data",
            "bind",
            "idmap",
            uid=TO_100000,
            gid=[
                {"containerID": 0, "hostID": 100000, "size": 10},
                {"containerID": 5, "hostID": 200000, "size": 10},
            ],
        ),
        "/mounts/8/gidMappings/1/containerID",
        True,
    ),
    (
        "past-last-id",
        lambda d: idmapped(
            d, "/tmp/data", "bind", "idmap", uid=[{"containerID": 0, "hostID": 4294967295, "size": 2}]
        ),
        "/mounts/8/uidMappings/0/size",
        True,
    ),
    (
        "uid-without-gid",
        lambda d: {**idmapped(d, "/tmp/data", "bind", "idmap"), "uidMappings": TO_100000},
        "/mounts/8/gidMappings",
        True,
    ),
    (
        "fs-without-idmap-support",
        lambda d: idmapped("/sys/kernel", "/tmp/data", "bind", "idmap", uid=TO_100000),
        "/mounts/8",
        True,
    ),
    (
        "source-missing",
        lambda d: idmapped(os.path.join(d, "missing"), "/tmp/data", "bind", "idmap", uid=TO_100000),
        "/mounts/8",
        False,
    ),
]


@pytest.mark.parametrize(
    "make,pointer",
    [
        pytest.param(m, p, id=i, marks=[pytest.mark.runc_deviates(RUNC_PREDATES)] if deviates else [])
        for i, m, p, deviates in ERRORS
    ],
)
def test_idmap_errors(rt, make_bundle, hostdir, make, pointer):
    """Refused with a one-line error naming the mount, and nothing left behind (no state,
    cgroup, mount, or runtime process: the helper user namespaces' holders are reaped)."""
    b = make_bundle(["true"], mutate=mounts(make(hostdir)))
    assert len(b.config["mounts"]) == 9
    assert_failed_cleanly(rt, b, rt.create(b.id, b), pointer)
