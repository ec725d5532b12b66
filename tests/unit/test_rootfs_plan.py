"""The config -> mount calls mapping, run against the recording fake: no root needed."""

import os

import pytest

from ocirt import kernel as k
from ocirt import rootfs as rootfs_mod
from ocirt.errors import ConfigError, OcirtError
from ocirt.kernel.fake import RecordingKernel
from ocirt.rootfs import Rootfs, RootfsSpec, parse_options

ROOT = "/bundle/rootfs"


def run_prepare(mounts, **kw):
    kern = RecordingKernel()
    spec = RootfsSpec(rootfs=ROOT, mounts=mounts, **kw)
    Rootfs(kern, spec).prepare()
    return kern


def mounts(kern):
    return [c.args for c in kern.find("mount")]


def test_parse_options_flags_propagation_and_data():
    o = parse_options(["nosuid", "noexec", "ro", "rprivate", "size=64k", "mode=755", "rnodev"])
    assert o.flags == k.MS_NOSUID | k.MS_NOEXEC | k.MS_RDONLY
    assert o.propagation == [k.MS_PRIVATE | k.MS_REC]
    assert o.data == ["size=64k", "mode=755"]
    assert o.recursive_set == k.MOUNT_ATTR_NODEV


def test_later_option_wins():
    assert parse_options(["ro", "rw"]).flags & k.MS_RDONLY == 0
    assert parse_options(["rw", "ro"]).flags & k.MS_RDONLY


def test_root_made_slave_and_bound_to_itself_first():
    kern = run_prepare([])
    assert mounts(kern)[0] == (None, "/", None, k.MS_REC | k.MS_SLAVE, None)
    assert mounts(kern)[1] == (ROOT, ROOT, None, k.MS_BIND | k.MS_REC, None)


def test_rootfs_propagation_private():
    kern = run_prepare([], propagation="private")
    assert mounts(kern)[0] == (None, "/", None, k.MS_REC | k.MS_PRIVATE, None)


def test_tmpfs_mount_goes_under_rootfs_with_data():
    kern = run_prepare(
        [
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            }
        ]
    )
    m = [a for a in mounts(kern) if a[2] == "tmpfs"][0]
    assert m == ("tmpfs", ROOT + "/dev", "tmpfs", k.MS_NOSUID | k.MS_STRICTATIME, "mode=755,size=65536k")


def test_default_devices_and_symlinks_when_dev_is_tmpfs():
    kern = run_prepare([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}])
    nodes = {c.args[0]: c.args[2:] for c in kern.find("mknod")}
    assert nodes[ROOT + "/dev/null"] == (1, 3)
    assert nodes[ROOT + "/dev/tty"] == (5, 0)
    links = {c.args[1]: c.args[0] for c in kern.find("symlink")}
    assert links[ROOT + "/dev/fd"] == "/proc/self/fd"
    assert links[ROOT + "/dev/ptmx"] == "pts/ptmx"


def test_no_default_devices_when_dev_is_bound_from_host():
    kern = run_prepare([{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}])
    assert not kern.find("mknod")


def test_bind_readonly_is_bind_then_remount():
    kern = run_prepare(
        [{"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "nosuid"]}]
    )
    ms = [a for a in mounts(kern) if a[1] == ROOT + "/data"]
    assert ms[0] == ("/tmp", ROOT + "/data", None, k.MS_BIND | k.MS_REC, None)
    assert ms[1] == (None, ROOT + "/data", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_NOSUID, None)


def test_propagation_option_is_a_separate_call():
    kern = run_prepare(
        [{"destination": "/data", "type": "bind", "source": "/tmp", "options": ["bind", "rshared"]}]
    )
    ms = [a for a in mounts(kern) if a[1] == ROOT + "/data"]
    assert ms[-1] == (None, ROOT + "/data", None, k.MS_SHARED | k.MS_REC, None)


def test_recursive_readonly_uses_mount_setattr():
    kern = run_prepare(
        [{"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "rro"]}]
    )
    (call,) = kern.find("mount_setattr")
    assert call.args[:3] == (ROOT + "/data", k.MOUNT_ATTR_RDONLY, 0)


def test_destinations_are_resolved_in_root():
    kern = run_prepare([{"destination": "/../../etc", "type": "tmpfs", "source": "tmpfs"}])
    opened = [c.args[0] for c in kern.find("open_in_root")]
    assert all(p.startswith(ROOT) for p in opened)


def test_missing_bind_source_names_the_mount():
    with pytest.raises(OcirtError, match=r"/mounts/0/source"):
        run_prepare([{"destination": "/x", "type": "bind", "source": "/does/not/exist"}])


def test_config_devices_are_created_with_owner():
    kern = run_prepare(
        [],
        devices=[
            {
                "path": "/dev/fuse",
                "type": "c",
                "major": 10,
                "minor": 229,
                "fileMode": 0o600,
                "uid": 7,
                "gid": 8,
            }
        ],
    )
    (node,) = [c for c in kern.find("mknod") if c.args[0] == ROOT + "/dev/fuse"]
    assert node.args[1] & 0o7777 == 0o600
    assert (ROOT + "/dev/fuse", 7, 8) in [c.args for c in kern.find("chown")]


def test_default_devices_without_a_dev_mount_but_not_under_a_bound_one():
    """config-linux.md: the default devices are supplied whatever /dev is (no mount of its own:
    in the rootfs's /dev, as runc does), but a bind on /dev brings its own."""
    made = {c.args[0] for c in run_prepare([]).find("mknod")}
    assert {ROOT + "/dev/null", ROOT + "/dev/zero", ROOT + "/dev/tty"} <= made
    bound = run_prepare([{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}])
    assert not bound.find("mknod")


def test_devices_bound_from_host_in_a_user_namespace():
    kern = run_prepare(
        [], in_userns=True, devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    )
    assert not kern.find("mknod")
    assert ("/dev/fuse", ROOT + "/dev/fuse", None, k.MS_BIND, None) in mounts(kern)


def test_pivot_root_sequence():
    kern = RecordingKernel()
    Rootfs(kern, RootfsSpec(rootfs=ROOT, mounts=[])).pivot()
    assert kern.names()[:2] == ["open", "open"]
    assert "pivot_root" in kern.names()
    umount = kern.find("umount")[0]
    assert umount.args == (".", k.MNT_DETACH)


def test_no_pivot_moves_and_chroots():
    kern = RecordingKernel()
    Rootfs(kern, RootfsSpec(rootfs=ROOT, mounts=[], no_pivot=True)).pivot()
    assert "pivot_root" not in kern.names()
    assert (ROOT, "/", None, k.MS_MOVE, None) in mounts(kern)
    assert kern.find("chroot")


def test_readonly_root_remounts_slash(tmp_path):
    kern = RecordingKernel()
    Rootfs(kern, RootfsSpec(rootfs=ROOT, mounts=[], readonly=True)).finish()
    (m,) = mounts(kern)
    assert m[1] == "/" and m[3] & k.MS_RDONLY and m[3] & k.MS_REMOUNT


def test_masked_paths_file_and_dir(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    d = tmp_path / "dir"
    d.mkdir()
    kern = RecordingKernel()
    Rootfs(kern, RootfsSpec(rootfs=ROOT, mounts=[], masked=[str(f), str(d), "/nonexistent"])).finish()
    ms = mounts(kern)
    assert ("/dev/null", str(f), None, k.MS_BIND, None) in ms
    assert ("tmpfs", str(d), "tmpfs", k.MS_RDONLY, None) in ms
    assert not any(m[1] == "/nonexistent" for m in ms)


def test_readonly_paths_bind_then_remount_ro(tmp_path):
    kern = RecordingKernel()
    Rootfs(kern, RootfsSpec(rootfs=ROOT, mounts=[], readonly_paths=[str(tmp_path)])).finish()
    ms = mounts(kern)
    assert ms[0] == (str(tmp_path), str(tmp_path), None, k.MS_BIND | k.MS_REC, None)
    assert ms[1][3] & k.MS_RDONLY and ms[1][3] & k.MS_REMOUNT


def test_cgroup_v2_mount():
    kern = run_prepare(
        [
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["ro", "nosuid"],
            }
        ],
        cgroup2=True,
    )
    assert ("cgroup2", ROOT + "/sys/fs/cgroup", "cgroup2", k.MS_RDONLY | k.MS_NOSUID, None) in mounts(kern)


def test_cgroup_v1_mount_is_tmpfs_plus_binds():
    kern = run_prepare(
        [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]}],
        cgroup_binds=[("/sys/fs/cgroup/memory/c1", "memory")],
    )
    ms = mounts(kern)
    # nosuid, nodev and noexec though the options leave them out, as runc mounts it
    tmpfs_flags = k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC
    assert ("tmpfs", ROOT + "/sys/fs/cgroup", "tmpfs", tmpfs_flags, "mode=755") in ms
    assert (
        "/sys/fs/cgroup/memory/c1",
        ROOT + "/sys/fs/cgroup/memory",
        None,
        k.MS_BIND | k.MS_REC,
        None,
    ) in ms


# -- a read-only /dev or tmpfs: writable until what goes under it is made ---------------------------


def test_readonly_tmpfs_is_mounted_writable_then_sealed_before_pivot_root():
    kern = RecordingKernel()
    rootfs = Rootfs(
        kern,
        RootfsSpec(
            rootfs=ROOT,
            mounts=[
                {
                    "destination": "/dev",
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["nosuid", "ro", "mode=755"],
                },
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid"]},
            ],
        ),
    )
    rootfs.prepare()
    dev = [a for a in mounts(kern) if a[2] == "tmpfs"][0]
    assert dev[1] == ROOT + "/dev" and not dev[3] & k.MS_RDONLY
    assert not [a for a in mounts(kern) if a[3] & k.MS_REMOUNT]
    assert kern.find("mknod")  # the default devices went into it
    rootfs.pivot()
    names = kern.names()
    (seal,) = [c for c in kern.find("mount") if c.args[3] & k.MS_REMOUNT]
    assert seal.args == (None, ROOT + "/dev", None, k.MS_REMOUNT | k.MS_NOSUID | k.MS_RDONLY, None)
    assert kern.calls.index(seal) < names.index("pivot_root")


def test_readonly_bind_is_still_remounted_at_once():
    kern = run_prepare(
        [{"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]}]
    )
    assert [a for a in mounts(kern) if a[3] & k.MS_REMOUNT]


def test_readonly_non_tmpfs_dev_is_sealed_per_mount():
    kern = RecordingKernel()
    rootfs = Rootfs(
        kern,
        RootfsSpec(
            rootfs=ROOT,
            mounts=[{"destination": "/dev", "type": "devtmpfs", "source": "devtmpfs", "options": ["ro"]}],
        ),
    )
    rootfs.prepare()
    rootfs.seal_readonly()
    (seal,) = [a for a in mounts(kern) if a[3] & k.MS_REMOUNT]
    assert seal[3] & (k.MS_BIND | k.MS_RDONLY) == k.MS_BIND | k.MS_RDONLY  # not the superblock


# -- proc and sysfs only on an ordinary directory ------------------------------------------------


@pytest.mark.parametrize("dest,mtype", [("/proc", "proc"), ("/sys", "sysfs")])
def test_proc_or_sysfs_on_a_symlink_is_refused(dest, mtype):
    kern = RecordingKernel()
    kern.links[ROOT + dest] = "/elsewhere" + dest
    spec = RootfsSpec(rootfs=ROOT, mounts=[{"destination": dest, "type": mtype, "source": mtype}])
    with pytest.raises(
        OcirtError,
        match=r"^/mounts/0/destination: .*symlink.*"
        rf"{mtype} must be mounted on an ordinary directory",
    ):
        Rootfs(kern, spec).prepare()
    assert not [a for a in mounts(kern) if a[2] == mtype]


def test_proc_on_a_directory_is_mounted():
    kern = run_prepare([{"destination": "/proc", "type": "proc", "source": "proc"}])
    assert ("proc", ROOT + "/proc", "proc", 0, None) in mounts(kern)


def test_a_bind_on_a_symlinked_proc_is_not_refused():
    kern = RecordingKernel()
    kern.links[ROOT + "/proc"] = "/elsewhere/proc"
    Rootfs(
        kern,
        RootfsSpec(
            rootfs=ROOT,
            mounts=[{"destination": "/proc", "type": "bind", "source": "/tmp", "options": ["rbind"]}],
        ),
    ).prepare()


@pytest.mark.parametrize(
    "dest,mtype,allowed",
    [
        ("/proc/cpuinfo", "bind", True),  # lxcfs's files
        ("/proc/sys/kernel/ns_last_pid", "bind", True),
        ("/proc/self/environ", "bind", False),
        ("/proc/version", "bind", False),
        ("/proc/sys/kernel", "bind", False),
        ("/proc", "bind", False),  # /tmp is no procfs
        ("/proc/x", "devpts", False),  # a type runc does not know: checked as a bind
        ("/proc/x", "tmpfs", True),  # (masked paths are tmpfs and /dev/null binds)
        ("/procfoo", "bind", True),
    ],
)
def test_binds_into_proc_are_refused_but_lxcfs_files(dest, mtype, allowed):
    kern = RecordingKernel()
    opts = ["rbind"] if mtype == "bind" else []
    rootfs = Rootfs(
        kern,
        RootfsSpec(
            rootfs=ROOT, mounts=[{"destination": dest, "type": mtype, "source": "/tmp", "options": opts}]
        ),
    )
    if allowed:
        rootfs.prepare()
        return
    with pytest.raises(ConfigError, match="cannot be mounted because it is") as e:
        rootfs.prepare()
    assert e.value.pointer == "/mounts/0/destination"


def test_a_procfs_may_be_bound_on_proc():
    mountinfo = b"22 1 0:21 / /proc rw - proc proc rw\n30 1 254:0 / / rw - ext4 /dev/vda rw\n"
    assert rootfs_mod._fstype_of("/proc", mountinfo) == "proc"
    assert rootfs_mod._fstype_of("/proc/self", mountinfo) == "proc"
    assert rootfs_mod._fstype_of("/tmp", mountinfo) == "ext4"


# -- --no-pivot: no visible procfs or sysfs of the host left ---------------------------------------

MOUNTINFO = b"""\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
24 23 0:23 / /sys/fs/cgroup ro shared:7 - tmpfs tmpfs ro
25 1 0:21 /sys /mnt/procsys rw - proc proc rw
26 1 0:21 / /srv/my\\040proc rw - proc proc rw
30 1 254:0 /bundle/rootfs /bundle/rootfs rw - ext4 /dev/vda rw
31 30 0:40 / /bundle/rootfs/proc rw - proc proc rw
32 30 0:41 / /bundle/rootfs/sys rw - sysfs sysfs rw
33 1 0:42 / /bundle/rootfs2/proc rw - proc proc rw
"""


def test_visible_kernel_mounts_are_the_whole_procfs_and_sysfs_outside_the_rootfs():
    from ocirt.rootfs import visible_kernel_mounts

    assert visible_kernel_mounts(MOUNTINFO, ROOT) == ["/proc", "/sys", "/srv/my proc", "/bundle/rootfs2/proc"]


class MountinfoKernel(RecordingKernel):
    def __init__(self, umount_error=None):
        super().__init__()
        self.umount_error = umount_error

    def umount(self, target, flags=0):
        super().umount(target, flags)
        if self.umount_error and target != ".":
            raise OSError(self.umount_error, "refused")


def no_pivot(kern):
    rootfs = Rootfs(kern, RootfsSpec(rootfs=ROOT, mounts=[], no_pivot=True))
    rootfs.mountinfo = lambda: MOUNTINFO
    rootfs.pivot()
    return kern


def test_no_pivot_unmounts_the_hosts_procfs_and_sysfs_before_the_move():
    kern = no_pivot(MountinfoKernel())
    umounts = [c.args for c in kern.find("umount")]
    assert umounts == [
        ("/proc", k.MNT_DETACH),
        ("/sys", k.MNT_DETACH),
        ("/srv/my proc", k.MNT_DETACH),
        ("/bundle/rootfs2/proc", k.MNT_DETACH),
    ]
    move = [c for c in kern.find("mount") if c.args[3] == k.MS_MOVE][0]
    assert kern.calls.index(kern.find("umount")[-1]) < kern.calls.index(move)


def test_no_pivot_covers_what_a_user_namespace_may_not_unmount():
    import errno

    kern = no_pivot(MountinfoKernel(errno.EINVAL))
    covers = [a for a in mounts(kern) if a[2] == "tmpfs"]
    assert [a[1] for a in covers] == ["/proc", "/sys", "/srv/my proc", "/bundle/rootfs2/proc"]
    assert all(a[3] & k.MS_RDONLY for a in covers)


def test_pivot_root_leaves_the_mountinfo_alone():
    kern = MountinfoKernel()
    rootfs = Rootfs(kern, RootfsSpec(rootfs=ROOT, mounts=[]))
    rootfs.mountinfo = lambda: pytest.fail("read without --no-pivot")
    rootfs.pivot()


# -- bind sources a user namespace cannot reach: opened by the parent ------------------------------


@pytest.fixture
def no_lockable_flags(monkeypatch):
    """Every bind source on a mount without read-only/nosuid/nodev/noexec (whatever the host's)."""
    import ocirt.rootfs

    monkeypatch.setattr(ocirt.rootfs, "has_lockable_flags", lambda source, recursive: False)


def test_parent_opens_bind_sources_as_slave_trees(no_lockable_flags):
    from ocirt.rootfs import open_bind_sources

    kern = RecordingKernel()
    spec = RootfsSpec(
        rootfs=ROOT,
        in_userns=True,
        mounts=[
            {"destination": "/a", "type": "bind", "source": "/src/a", "options": ["rbind"]},
            {"destination": "/b", "source": "/src/b", "options": ["bind", "ro"]},
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/i", "type": "bind", "source": "/src/i", "options": ["rbind", "idmap"]},
            {"destination": "/p", "type": "proc", "source": "proc"},
        ],
        idmap_fds={3: 99},
    )
    fds = open_bind_sources(kern, spec)
    trees = [c.args for c in kern.find("open_tree")]
    assert trees == [
        ("/src/a", k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC | k.AT_RECURSIVE),
        ("/src/b", k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC),
    ]
    assert spec.source_trees == [0, 1] and sorted(fds) == sorted([spec.idmap_fds[0], spec.idmap_fds[1]])
    assert spec.idmap_fds[3] == 99
    for c in kern.find("mount_setattr"):
        assert c.args[1:5] == (0, 0, k.MS_SLAVE, True)


def test_parent_skips_a_source_it_cannot_open(no_lockable_flags):
    from ocirt.rootfs import open_bind_sources

    kern = RecordingKernel(fail={"open_tree": PermissionError(1, "no")})
    spec = RootfsSpec(
        rootfs=ROOT,
        in_userns=True,
        mounts=[{"destination": "/a", "type": "bind", "source": "/src/a", "options": ["rbind"]}],
    )
    assert open_bind_sources(kern, spec) == [] and spec.source_trees == [] and not spec.idmap_fds


class RefusingKernel(RecordingKernel):
    """The init's bind of `refused` fails as a user namespace's would (permission denied)."""

    def __init__(self, refused, error=13):
        super().__init__()
        self.refused, self.error = refused, error

    def mount(self, source, target, fstype, flags, data):
        super().mount(source, target, fstype, flags, data)
        if source == self.refused:
            raise PermissionError(self.error, os.strerror(self.error))


def trees_spec(tmp_path):
    from ocirt.rootfs import open_bind_sources

    reachable, private = tmp_path / "reachable", tmp_path / "private"
    reachable.mkdir()
    private.mkdir()
    spec = RootfsSpec(
        rootfs=ROOT,
        in_userns=True,
        mounts=[
            {"destination": "/r", "type": "bind", "source": str(reachable), "options": ["rbind"]},
            {"destination": "/p", "type": "bind", "source": str(private), "options": ["rbind", "ro"]},
        ],
    )
    return spec, open_bind_sources, str(private)


def test_init_binds_what_it_reaches_and_moves_the_parents_tree_for_the_rest(tmp_path, no_lockable_flags):
    spec, open_bind_sources, private = trees_spec(tmp_path)
    kern = RefusingKernel(private)
    open_bind_sources(kern, spec)
    tree_r, tree_p = spec.idmap_fds[0], spec.idmap_fds[1]
    Rootfs(kern, spec).prepare()
    moves = [c.args for c in kern.find("move_mount")]
    assert moves == [(f"<tree {private}>", ROOT + "/p")]
    assert (str(tmp_path / "reachable"), ROOT + "/r", None, k.MS_BIND | k.MS_REC, None) in mounts(kern)
    remount = [a for a in mounts(kern) if a[1] == ROOT + "/p" and a[3] & k.MS_REMOUNT]
    assert remount and remount[0][3] & k.MS_RDONLY  # the mount's own options, after the move
    assert tree_r not in kern._fds and tree_p not in kern._fds  # both closed in the init
    assert spec.idmap_fds == {}


def test_only_permission_denied_falls_back_to_the_tree(tmp_path, no_lockable_flags):
    spec, open_bind_sources, private = trees_spec(tmp_path)
    kern = RefusingKernel(private, error=1)  # EPERM: not a lookup the user namespace may not do
    open_bind_sources(kern, spec)
    with pytest.raises(OcirtError, match=r"^/mounts/1: mount .*operation not permitted"):
        Rootfs(kern, spec).prepare()
    assert not kern.find("move_mount")


def test_a_refused_bind_without_a_tree_names_the_mount(tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    kern = RefusingKernel(str(private))
    spec = RootfsSpec(
        rootfs=ROOT,
        mounts=[{"destination": "/p", "type": "bind", "source": str(private), "options": ["rbind"]}],
    )
    with pytest.raises(OcirtError, match=r"^/mounts/0: mount .*permission denied"):
        Rootfs(kern, spec).prepare()


def test_no_tree_for_a_source_whose_mount_has_flags_to_lock(monkeypatch):
    """A tree from the runtime's mount namespace would carry nosuid/nodev/... unlocked: the
    container's root could lift them. No tree then (the bind fails as before)."""
    import ocirt.rootfs
    from ocirt.rootfs import open_bind_sources

    seen = []
    monkeypatch.setattr(
        ocirt.rootfs, "has_lockable_flags", lambda source, recursive: seen.append((source, recursive)) or True
    )
    kern = RecordingKernel()
    spec = RootfsSpec(
        rootfs=ROOT,
        in_userns=True,
        mounts=[
            {"destination": "/a", "type": "bind", "source": "/src/a", "options": ["rbind"]},
            {"destination": "/b", "type": "bind", "source": "/src/b", "options": ["bind"]},
        ],
    )
    assert open_bind_sources(kern, spec) == [] and not kern.find("open_tree")
    assert seen == [("/src/a", True), ("/src/b", False)]


def test_has_lockable_flags(tmp_path, monkeypatch):
    from ocirt.rootfs import has_lockable_flags

    assert has_lockable_flags("/does/not/exist", False)
    plain = b"40 1 0:50 / %s rw,relatime - tmpfs tmpfs rw\n" % str(tmp_path).encode()
    sub = plain + b"41 40 0:51 / %s/sub rw,nosuid - tmpfs tmpfs rw\n" % str(tmp_path).encode()
    monkeypatch.setattr("posix.statvfs", lambda p: type("V", (), {"f_flag": 0})())
    assert not has_lockable_flags(str(tmp_path), True, plain)
    assert has_lockable_flags(str(tmp_path), True, sub)  # a submount an rbind takes along
    assert not has_lockable_flags(str(tmp_path), False, sub)  # a bind does not
    monkeypatch.setattr("posix.statvfs", lambda p: type("V", (), {"f_flag": os.ST_NODEV})())
    assert has_lockable_flags(str(tmp_path), False, plain)
