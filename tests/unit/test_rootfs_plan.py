"""The config -> mount calls mapping, run against the recording fake: no root needed."""

import pytest

from ocirt import kernel as k
from ocirt.errors import OcirtError
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
    kern = run_prepare([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}])
    m = [a for a in mounts(kern) if a[2] == "tmpfs"][0]
    assert m == ("tmpfs", ROOT + "/dev", "tmpfs", k.MS_NOSUID | k.MS_STRICTATIME,
                 "mode=755,size=65536k")


def test_default_devices_and_symlinks_when_dev_is_tmpfs():
    kern = run_prepare([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}])
    nodes = {c.args[0]: c.args[2:] for c in kern.find("mknod")}
    assert nodes[ROOT + "/dev/null"] == (1, 3)
    assert nodes[ROOT + "/dev/tty"] == (5, 0)
    links = {c.args[1]: c.args[0] for c in kern.find("symlink")}
    assert links[ROOT + "/dev/fd"] == "/proc/self/fd"
    assert links[ROOT + "/dev/ptmx"] == "pts/ptmx"


def test_no_default_devices_when_dev_is_bound_from_host():
    kern = run_prepare([{"destination": "/dev", "type": "bind", "source": "/dev",
                         "options": ["rbind"]}])
    assert not kern.find("mknod")


def test_bind_readonly_is_bind_then_remount():
    kern = run_prepare([{"destination": "/data", "type": "bind", "source": "/tmp",
                         "options": ["rbind", "ro", "nosuid"]}])
    ms = [a for a in mounts(kern) if a[1] == ROOT + "/data"]
    assert ms[0] == ("/tmp", ROOT + "/data", None, k.MS_BIND | k.MS_REC, None)
    assert ms[1] == (None, ROOT + "/data", None,
                     k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_NOSUID, None)


def test_propagation_option_is_a_separate_call():
    kern = run_prepare([{"destination": "/data", "type": "bind", "source": "/tmp",
                         "options": ["bind", "rshared"]}])
    ms = [a for a in mounts(kern) if a[1] == ROOT + "/data"]
    assert ms[-1] == (None, ROOT + "/data", None, k.MS_SHARED | k.MS_REC, None)


def test_recursive_readonly_uses_mount_setattr():
    kern = run_prepare([{"destination": "/data", "type": "bind", "source": "/tmp",
                         "options": ["rbind", "rro"]}])
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
    kern = run_prepare([], devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                     "fileMode": 0o600, "uid": 7, "gid": 8}])
    (node,) = kern.find("mknod")
    assert node.args[0] == ROOT + "/dev/fuse" and node.args[1] & 0o7777 == 0o600
    assert kern.find("chown")[0].args == (ROOT + "/dev/fuse", 7, 8)


def test_devices_bound_from_host_in_a_user_namespace():
    kern = run_prepare([], in_userns=True,
                       devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}])
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
    kern = run_prepare([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                         "options": ["ro", "nosuid"]}], cgroup2=True)
    assert ("cgroup2", ROOT + "/sys/fs/cgroup", "cgroup2", k.MS_RDONLY | k.MS_NOSUID, None) \
        in mounts(kern)


def test_cgroup_v1_mount_is_tmpfs_plus_binds():
    kern = run_prepare([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                         "options": ["ro"]}],
                       cgroup_binds=[("/sys/fs/cgroup/memory/c1", "memory")])
    ms = mounts(kern)
    assert ("tmpfs", ROOT + "/sys/fs/cgroup", "tmpfs", 0, "mode=755") in ms
    assert ("/sys/fs/cgroup/memory/c1", ROOT + "/sys/fs/cgroup/memory", None,
            k.MS_BIND | k.MS_REC, None) in ms
