"""The container's view of its root filesystem, hardened as runc hardens it: a read-only /dev (or
tmpfs) with mounts and devices under it, bind sources a user namespace cannot reach, --no-pivot
leaving no unmasked procfs within reach, and proc/sysfs refused on a symlink of the image."""

import os
import subprocess

import pytest
from runtime import assert_failed_cleanly, ok, sh

USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def userns(c):
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = USERNS_MAP
    c["linux"]["gidMappings"] = USERNS_MAP


def mountinfo_options(out, dest):
    """The per-mount options of the last mount at `dest`, from a `cat /proc/self/mountinfo`."""
    lines = [ln.split() for ln in out.splitlines() if len(ln.split()) > 5 and ln.split()[4] == dest]
    assert lines, f"no mount at {dest}"
    return set(lines[-1][5].split(","))


def mountinfo_fstype(out, dest):
    fields = [ln.split() for ln in out.splitlines() if len(ln.split()) > 5 and ln.split()[4] == dest][-1]
    return fields[fields.index("-") + 1]


# ---- a read-only /dev and read-only tmpfs mounts -----------------------------------------------------


def readonly_dev(c):
    for m in c["mounts"]:
        if m["destination"] == "/dev":
            m["options"] = m.get("options", []) + ["ro"]


@pytest.mark.parametrize("ns", ["host-userns", "new-userns"])
def test_readonly_dev_gets_its_mounts_and_devices(run_in, ns):
    """config.json's /dev tmpfs with "ro": the devpts, shm and mqueue mounts under it, the default
    devices and links, and linux.devices are still made; then /dev is read-only (runc: the same;
    /dev/pts keeps its own options)."""

    def mutate(c):
        readonly_dev(c)
        # (a device the host has: in a user namespace it is bound from the host)
        c["linux"]["devices"] = [
            {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600}
        ]
        if ns == "new-userns":
            userns(c)

    script = (
        "cat /proc/self/mountinfo; echo ===; "
        "touch /dev/new 2>/dev/null && echo WROTE-DEV; "
        "echo data > /dev/null && echo NULL-OK; test -c /dev/kmsg && echo DEVICE-OK; "
        "readlink /dev/ptmx; readlink /dev/fd; test -c /dev/pts/ptmx && echo PTMX; "
        "touch /dev/shm/x && echo SHM-WRITABLE"
    )
    out = ok(run_in(sh(script), mutate=mutate))
    info, _, rest = out.partition("===\n")
    assert "ro" in mountinfo_options(info, "/dev")
    assert mountinfo_fstype(info, "/dev/pts") == "devpts"
    assert "rw" in mountinfo_options(info, "/dev/pts")
    assert mountinfo_fstype(info, "/dev/shm") == "tmpfs"
    assert mountinfo_fstype(info, "/dev/mqueue") == "mqueue"
    assert "WROTE-DEV" not in rest
    for want in ("NULL-OK", "DEVICE-OK", "pts/ptmx", "/proc/self/fd", "PTMX", "SHM-WRITABLE"):
        assert want in rest, (want, rest)


def test_readonly_tmpfs_with_a_mount_under_it(run_in):
    """A read-only tmpfs whose mount point for a later mount does not exist yet: made, then
    read-only (runc remounts every read-only tmpfs read-only at the end)."""

    def mutate(c):
        c["mounts"] += [
            {"destination": "/tmp/ro", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "size=1m"]},
            {"destination": "/tmp/ro/sub/dir", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        ]

    script = (
        "cat /proc/self/mountinfo; echo ===; touch /tmp/ro/x 2>/dev/null && echo WROTE-RO; "
        "touch /tmp/ro/sub/dir/x && echo WROTE-SUB"
    )
    out = ok(run_in(sh(script), mutate=mutate))
    info, _, rest = out.partition("===\n")
    assert "ro" in mountinfo_options(info, "/tmp/ro")
    assert "size=1024k" in [
        o for ln in info.splitlines() if ln.split()[4] == "/tmp/ro" for o in ln.split()[-1].split(",")
    ]
    assert "WROTE-RO" not in rest
    assert "WROTE-SUB" in rest


# ---- bind sources in a user namespace ----------------------------------------------------------------


@pytest.fixture
def private_source(tmp_path):
    """A directory on a tmpfs of its own (no read-only/nosuid/nodev/noexec, whatever the host's
    /tmp has), under a directory only the host's root may enter (the test's 0700 tmp dir, owned
    by root; the container's root is host uid 100000)."""
    assert os.stat(tmp_path).st_mode & 0o007 == 0 and os.stat(tmp_path).st_uid == 0
    src = tmp_path / "private" / "data"
    src.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755,size=1m", "tmpfs", str(src)], check=True)
    try:
        (src / "file").write_text("from-the-host\n")
        yield src
    finally:
        subprocess.run(["umount", "-l", str(src)], check=True)


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_bind_source_the_user_namespace_cannot_reach(run_in, private_source, kind):
    """The runtime opens the source before the user namespace, so the bind works, read-only when
    asked (runc: the same)."""
    src = private_source
    source = src if kind == "dir" else src / "file"
    dest = "/tmp/data" if kind == "dir" else "/tmp/data-file"
    path = "/tmp/data/file" if kind == "dir" else dest

    def mutate(c):
        userns(c)
        c["mounts"].append(
            {"destination": dest, "type": "bind", "source": str(source), "options": ["rbind", "ro"]}
        )

    out = ok(
        run_in(
            sh(
                f"cat {path}; cat /proc/self/mountinfo; echo ===; "
                f"( echo x >> {path} ) 2>/dev/null && echo WROTE; true"
            ),
            mutate=mutate,
        )
    )
    first, rest = out.split("\n", 1)
    assert first == "from-the-host"
    info, _, verdict = rest.partition("===\n")
    assert "ro" in mountinfo_options(info, dest)
    assert "WROTE" not in verdict
    assert (src / "file").read_text() == "from-the-host\n"


def test_unreachable_bind_source_keeps_its_mounts_flags_locked(run_in, tmp_path):
    """The source's own mount is nosuid,nodev: the container's root (with CAP_SYS_ADMIN in its user
    namespace) must not be able to lift that (runc: the flags are locked; ocirt: no such bind is
    made through the runtime's namespace, so it is refused or the flags hold)."""
    assert os.stat(tmp_path).st_uid == 0
    src = tmp_path / "private" / "flagged"
    src.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=755,size=1m,nosuid,nodev", "tmpfs", str(src)], check=True
    )
    try:

        def mutate(c):
            userns(c)
            for key in ("bounding", "effective", "permitted"):
                c["process"]["capabilities"][key] = c["process"]["capabilities"][key] + ["CAP_SYS_ADMIN"]
            c["mounts"].append(
                {"destination": "/tmp/data", "type": "bind", "source": str(src), "options": ["rbind"]}
            )

        p = run_in(
            sh(
                "mount -o remount,bind,suid,dev /tmp/data 2>/dev/null && echo LIFTED; "
                "awk '$5 == \"/tmp/data\"' /proc/self/mountinfo"
            ),
            mutate=mutate,
        )
        if p.returncode == 0:
            assert "LIFTED" not in p.stdout
            assert {"nosuid", "nodev"} <= mountinfo_options(p.stdout, "/tmp/data")
    finally:
        subprocess.run(["umount", "-l", str(src)], check=True)


def test_bind_source_missing_still_fails_in_a_user_namespace(rt, make_bundle, tmp_path):
    def mutate(c):
        userns(c)
        c["mounts"].append(
            {
                "destination": "/tmp/data",
                "type": "bind",
                "source": str(tmp_path / "missing"),
                "options": ["rbind"],
            }
        )

    b = make_bundle(["true"], mutate=mutate)
    p = rt.run(b.id, b)
    assert p.returncode != 0
    if rt.is_ocirt:
        assert_failed_cleanly(rt, b, p, pointer=f"/mounts/{len(b.config['mounts']) - 1}/source")


# ---- --no-pivot -------------------------------------------------------------------------------------

NESTED_PROC = (
    "unshare -mrpf sh -c 'echo NESTED; mount -t proc none /proc && echo MOUNTED-PROC; "
    "mount -t sysfs none /sys 2>/dev/null && echo MOUNTED-SYS'; true"
)


def unprivileged_user(c):
    c["process"]["user"] = {"uid": 1000, "gid": 1000}


@pytest.mark.parametrize("pivot", ["pivot_root", "no-pivot"])
def test_no_unmasked_procfs_within_reach(run_in, pivot):
    """A process of the container makes a user, mount and pid namespace of its own and mounts a new
    procfs there: the kernel allows it only while a fully visible procfs is in the mount namespace.
    With pivot_root the host's is gone; with --no-pivot it is still under the container's root
    unless the runtime unmounts it (runc: "permission denied" either way)."""
    extra = ["--no-pivot"] if pivot == "no-pivot" else []

    out = run_in(sh(NESTED_PROC), extra=extra, mutate=unprivileged_user)
    stdout = ok(out)
    if "NESTED" not in stdout:
        pytest.skip(f"this host does not let an unprivileged process make user namespaces: {out.stderr!r}")
    assert "MOUNTED-PROC" not in stdout
    assert "MOUNTED-SYS" not in stdout


def test_no_pivot_in_a_user_namespace(run_in):
    """--no-pivot with a user namespace: the host's procfs cannot be unmounted there (it is locked),
    so it is covered; no unmasked procfs is within reach either way."""

    def mutate(c):
        userns(c)
        unprivileged_user(c)

    out = run_in(sh(NESTED_PROC), extra=["--no-pivot"], mutate=mutate)
    stdout = ok(out)
    if "NESTED" not in stdout:
        pytest.skip(f"no nested user namespaces here: {out.stderr!r}")
    assert "MOUNTED-PROC" not in stdout
    assert "MOUNTED-SYS" not in stdout


def test_no_pivot_container_still_works(run_in):
    out = ok(
        run_in(
            sh(
                "cat /proc/self/mountinfo | wc -l; echo x > /dev/null && echo OK; "
                "test -e /proc/keys && cat /proc/keys | wc -c"
            ),
            extra=["--no-pivot"],
        )
    )
    assert "OK" in out


# ---- proc and sysfs on a symlink of the image --------------------------------------------------------


def writable_rootfs(c):
    c["root"]["readonly"] = False


@pytest.mark.parametrize("top", ["proc", "sys"])
def test_proc_or_sys_on_a_symlink_is_refused(rt, make_bundle, top):
    """/proc or /sys in the image is a symlink (here to a directory of the rootfs): the runtime
    refuses to mount procfs/sysfs through it, naming the mount (runc: "must be mounted on ordinary
    directory")."""
    b = make_bundle(["true"], rootfs_copy=True, tmp=False, mutate=writable_rootfs)
    os.rmdir(os.path.join(b.rootfs, top))
    os.makedirs(os.path.join(b.rootfs, "elsewhere", top))
    os.symlink(f"/elsewhere/{top}", os.path.join(b.rootfs, top))
    index = next(i for i, m in enumerate(b.config["mounts"]) if m["destination"] == f"/{top}")
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer=f"/mounts/{index}/destination")
    assert "ordinary directory" in p.stderr
    assert os.listdir(os.path.join(b.rootfs, "elsewhere", top)) == []


def test_proc_on_a_directory_still_mounts(run_in):
    out = ok(run_in(sh("test -r /proc/self/status && echo PROC")))
    assert "PROC" in out
