"""Idmapped mounts (ocirt/idmap.py): the checks, the parent's detached trees and the init's
move_mount, against the recording fake; and `ocirt plan` listing them. No root needed."""

import json
import os

import pytest

from ocirt import idmap, namespaces
from ocirt import kernel as k
from ocirt.cli import main
from ocirt.errors import ConfigError, OcirtError
from ocirt.kernel.fake import RecordingKernel
from ocirt.rootfs import Rootfs, RootfsSpec, needs_idmap

ROOT = "/bundle/rootfs"
MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
LINES = "0 100000 65536\n"


def bind(src="/host/src", dest="/data", *options, uid=MAP, gid=None):
    m = {"destination": dest, "type": "bind", "source": src, "options": list(options) or ["rbind", "idmap"]}
    if uid is not None:
        m["uidMappings"] = uid
        m["gidMappings"] = gid if gid is not None else uid
    return m


def config(*mounts, user=False, join_user=None, linux_map=MAP):
    c = {"mounts": list(mounts), "linux": {"namespaces": [{"type": "mount"}]}}
    if user:
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = linux_map
        c["linux"]["gidMappings"] = linux_map
    if join_user:
        c["linux"]["namespaces"].append({"type": "user", "path": join_user})
    return c


def check(c):
    return idmap.check(c, namespaces.parse(c))


def pointer_of(c):
    with pytest.raises(ConfigError) as e:
        check(c)
    assert "\n" not in str(e.value)
    return e.value.pointer


# ---- check ---------------------------------------------------------------------------------------


def test_needs_idmap():
    assert needs_idmap({"options": ["ridmap"]})
    assert needs_idmap({"uidMappings": []})
    assert not needs_idmap({"options": ["rbind", "ro"]})


def test_mount_mappings_are_used():
    (r,) = check(config({"destination": "/x", "type": "tmpfs"}, bind()))
    assert (r.index, r.uid_map, r.gid_map, r.userns_path) == (1, LINES, LINES, "")
    assert r.recursive_tree and not r.recursive_map


def test_recursion_from_rbind_and_ridmap():
    reqs = check(
        config(
            bind("/a", "/a", "bind", "idmap"),
            bind("/b", "/b", "bind", "ridmap"),
            bind("/c", "/c", "rbind", "ridmap"),
        )
    )
    assert [(r.recursive_tree, r.recursive_map) for r in reqs] == [
        (False, False),
        (False, True),
        (True, True),
    ]


def test_container_user_namespace_mapping_when_mount_has_none():
    other = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    (r,) = check(config(bind(uid=None), user=True, linux_map=other))
    assert r.uid_map == r.gid_map == "0 200000 1000\n"


def test_joined_user_namespace_when_mount_has_none():
    (r,) = check(config(bind(uid=None), join_user="/proc/1234/ns/user"))
    assert r.userns_path == "/proc/1234/ns/user" and r.uid_map == ""


def test_mappings_without_option_are_an_idmap():
    (r,) = check(config(bind("/a", "/a", "rbind")))
    assert r.uid_map == LINES and not r.recursive_map


@pytest.mark.parametrize(
    "mount,pointer",
    [
        (bind(uid=None), "/mounts/0/options"),  # no mapping, no user namespace
        (
            {
                "destination": "/d",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["idmap"],
                "uidMappings": MAP,
                "gidMappings": MAP,
            },
            "/mounts/0/options",
        ),
        (
            {"destination": "/d", "type": "tmpfs", "source": "tmpfs", "uidMappings": MAP, "gidMappings": MAP},
            "/mounts/0/uidMappings",
        ),
        ({**bind(uid=None), "uidMappings": MAP}, "/mounts/0/gidMappings"),
        (bind(uid=[]), "/mounts/0/uidMappings"),
        (bind(uid=[{"containerID": 0, "hostID": 1, "size": 0}]), "/mounts/0/uidMappings/0/size"),
        (bind(uid=[{"containerID": 0, "hostID": 1}]), "/mounts/0/uidMappings/0/size"),
        (bind(uid=[{"containerID": -1, "hostID": 1, "size": 1}]), "/mounts/0/uidMappings/0/containerID"),
        (bind(uid=[{"containerID": 0, "hostID": "1", "size": 1}]), "/mounts/0/uidMappings/0/hostID"),
        (bind(uid=[{"containerID": 0, "hostID": 2**32 - 1, "size": 2}]), "/mounts/0/uidMappings/0/size"),
        (
            bind(
                uid=MAP,
                gid=[
                    {"containerID": 0, "hostID": 0, "size": 10},
                    {"containerID": 9, "hostID": 100, "size": 1},
                ],
            ),
            "/mounts/0/gidMappings/1/containerID",
        ),
        (
            bind(
                uid=[
                    {"containerID": 0, "hostID": 0, "size": 10},
                    {"containerID": 100, "hostID": 5, "size": 10},
                ]
            ),
            "/mounts/0/uidMappings/1/hostID",
        ),
        (bind(uid=[{"containerID": i, "hostID": i, "size": 1} for i in range(341)]), "/mounts/0/uidMappings"),
    ],
)
def test_check_errors_name_their_pointer(mount, pointer):
    assert pointer_of(config(mount)) == pointer


# ---- prepare: the parent's detached trees ------------------------------------------------------------


def test_prepare_order_and_arguments():
    kern = RecordingKernel()
    ms = [
        bind("/a", "/a", "bind", "idmap"),
        bind("/b", "/b", "rbind", "idmap"),
        bind("/c", "/c", "rbind", "ridmap"),
    ]
    fds = idmap.prepare(kern, check(config(*ms)), ms)
    assert sorted(fds) == [0, 1, 2]
    assert kern.names() == [
        "new_userns",
        "open_tree",
        "mount_setattr",
        "open_tree",
        "mount_setattr",
        "mount_setattr",
        "open_tree",
        "mount_setattr",
    ]
    assert kern.find("new_userns")[0].args == (LINES, LINES)  # one per distinct mapping
    clone = k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC
    assert [c.args for c in kern.find("open_tree")] == [
        ("/a", clone),
        ("/b", clone | k.AT_RECURSIVE),
        ("/c", clone | k.AT_RECURSIVE),
    ]
    ns = "<userns uid_map=0 100000 65536 gid_map=0 100000 65536>"
    assert [c.args for c in kern.find("mount_setattr")] == [
        ("<tree /a>", k.MOUNT_ATTR_IDMAP, 0, k.MS_SLAVE, False, ns),
        ("<tree /b>", 0, 0, k.MS_SLAVE, True, None),  # the whole tree slave ...
        ("<tree /b>", k.MOUNT_ATTR_IDMAP, 0, 0, False, ns),  # ... the top one mapped
        ("<tree /c>", k.MOUNT_ATTR_IDMAP, 0, k.MS_SLAVE, True, ns),
    ]
    assert set(kern._fds) == set(fds.values())  # the user namespace fd was closed


def test_prepare_private_rootfs_propagation_and_distinct_mappings():
    kern = RecordingKernel()
    other = [{"containerID": 0, "hostID": 1000, "size": 1}]
    ms = [bind("/a", "/a", "bind", "idmap"), bind("/b", "/b", "bind", "idmap", uid=other)]
    idmap.prepare(kern, check(config(*ms)), ms, "rprivate")
    assert len(kern.find("new_userns")) == 2
    assert {c.args[3] for c in kern.find("mount_setattr")} == {k.MS_PRIVATE}


def test_prepare_joined_user_namespace_is_opened():
    kern = RecordingKernel()
    ms = [bind(uid=None)]
    idmap.prepare(kern, check(config(*ms, join_user="/proc/9/ns/user")), ms)
    assert kern.names()[:2] == ["open", "open_tree"]
    assert kern.find("mount_setattr")[-1].args[-1] == "/proc/9/ns/user"


@pytest.mark.parametrize(
    "failing,pointer",
    [("open_tree", "/mounts/1/source"), ("mount_setattr", "/mounts/1"), ("new_userns", "/mounts/0")],
)
def test_prepare_failure_closes_everything(failing, pointer):
    class Failing(RecordingKernel):
        n = 0

        def _record(self, name, *args):
            if name == failing:
                self.n += 1
                if self.n == (1 if failing == "new_userns" else 2):
                    self.fail[name] = OSError(22, name)
            super()._record(name, *args)

    kern = Failing()
    ms = [bind("/a", "/a", "bind", "idmap"), bind("/b", "/b", "bind", "idmap")]
    with pytest.raises(OcirtError) as e:
        idmap.prepare(kern, check(config(*ms)), ms)
    assert e.value.message.startswith(pointer) and e.value.errno == 22
    assert kern._fds == {}  # trees and user namespace closed


# ---- the init: move_mount onto the RESOLVE_IN_ROOT mount point --------------------------------------


def test_init_moves_the_tree_then_applies_the_other_options():
    kern = RecordingKernel()
    tree = kern.open_tree("/host/src", k.OPEN_TREE_CLONE)
    kern.calls.clear()
    m = bind("/host/src", "/data", "rbind", "idmap", "ro", "nosuid", "rprivate", "rnodev")
    spec = RootfsSpec(rootfs=ROOT, mounts=[m], idmap_fds={0: tree})
    rootfs = Rootfs(kern, spec)
    rootfs._source_is_dir = lambda source, where: True
    rootfs.prepare()
    names = kern.names()
    assert not [c for c in kern.find("mount") if c.args[0] == "/host/src"]  # no bind mount(2)
    assert kern.find("move_mount")[0].args == ("<tree /host/src>", ROOT + "/data")
    i = names.index("move_mount")
    assert kern.calls[i - 1].name == "open_in_root" and kern.calls[i - 1].args == (ROOT + "/data", os.O_PATH)
    after = [c.args for c in kern.calls[i + 1 :] if c.name in ("mount", "mount_setattr")]
    assert after == [
        (None, ROOT + "/data", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_NOSUID, None),
        (None, ROOT + "/data", None, k.MS_PRIVATE | k.MS_REC, None),
        (ROOT + "/data", k.MOUNT_ATTR_NODEV, 0, 0, True),
    ]
    assert tree not in kern._fds  # closed once moved


def test_init_move_failure_names_the_mount():
    kern = RecordingKernel(fail={"move_mount": OSError(1, "move_mount")})
    spec = RootfsSpec(rootfs=ROOT, mounts=[bind()], idmap_fds={0: 7})
    rootfs = Rootfs(kern, spec)
    rootfs._source_is_dir = lambda source, where: True
    with pytest.raises(OcirtError) as e:
        rootfs.prepare()
    assert e.value.message.startswith("/mounts/0: move the idmapped mount") and e.value.errno == 1


def test_init_refuses_an_idmap_mount_without_its_tree():
    rootfs = Rootfs(RecordingKernel(), RootfsSpec(rootfs=ROOT, mounts=[bind()]))
    with pytest.raises(ConfigError):
        rootfs.prepare()


# ---- ocirt plan --------------------------------------------------------------------------------------


def test_plan_lists_the_idmap_steps(plan_bundle, capsys):
    tmp_path = plan_bundle
    (tmp_path / "src").mkdir()
    c = json.loads((tmp_path / "config.json").read_text())
    c["mounts"].append(bind(str(tmp_path / "src"), "/data", "rbind", "ridmap", "ro"))
    (tmp_path / "config.json").write_text(json.dumps(c))
    assert main(["--root", str(tmp_path / "state"), "plan", "--bundle", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    src, root = str(tmp_path / "src"), str(tmp_path / "rootfs")

    def at(prefix):
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    order = [
        at("# create (runtime): idmapped mounts"),
        at("new_userns('0 100000 65536\\n'"),
        at(f"open_tree('{src}', OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE)"),
        at(f"mount_setattr('<tree {src}>', MOUNT_ATTR_IDMAP, 0, MS_SLAVE, True"),
        at("# init: namespaces"),  # no user namespace: one fork (stages.one_fork)
        at(f"move_mount('<tree {src}>', '{root}/data')"),
        at(f"mount(None, '{root}/data', None, MS_RDONLY|MS_REMOUNT|MS_BIND"),
        at("pivot_root"),
    ]
    assert order == sorted(order)
