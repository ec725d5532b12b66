"""Pure logic of ocirt.cgroups: mountinfo parsing, path placement, the resources model.

No root and no cgroupfs needed: everything is fed canned /proc text.
"""

import pytest

from ocirt.cgroups import Resources, manager_for, parse_mountinfo, parse_proc_cgroup
from ocirt.cgroups.layout import clean_path, strip_root
from ocirt.cgroups.resources import blkio_weight_to_io_weight, shares_to_weight, swap_to_v2
from ocirt.errors import ConfigError, OcirtError

HYBRID = """\
22 1 0:20 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

V2 = """\
22 1 0:20 / /sys rw,nosuid - sysfs sysfs rw
40 23 0:36 / /sys/fs/cgroup rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

V1 = """\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 31 0:30 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 31 0:30 /docker/abc /mnt/again rw - cgroup cgroup rw,memory
35 31 0:31 / /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,pids
"""


def test_parse_hybrid():
    lay = parse_mountinfo(HYBRID)
    assert lay.kind == "hybrid"
    assert lay.unified == "/sys/fs/cgroup/unified"
    assert lay.mounts["cpu"] == lay.mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert lay.mounts["cpuset"] == "/sys/fs/cgroup/cpuset"  # clone_children is no controller
    assert lay.mounts["name=systemd"] == "/sys/fs/cgroup/systemd"  # xattr neither
    assert "xattr" not in lay.mounts and "clone_children" not in lay.mounts
    assert lay.hierarchies()["/sys/fs/cgroup/cpu,cpuacct"] == ("cpu", "cpuacct")


def test_parse_v2_and_v1():
    lay = parse_mountinfo(V2)
    assert (lay.kind, lay.unified, lay.mounts) == ("v2", "/sys/fs/cgroup", {})
    lay = parse_mountinfo(V1)
    assert lay.kind == "v1" and lay.unified is None
    assert lay.mounts["memory"] == "/sys/fs/cgroup/memory"  # first mount wins
    assert lay.roots["/sys/fs/cgroup/memory"] == "/docker/abc"
    assert lay.mounts["pids"] == "/sys/fs/cgroup/my dir"  # \040 unescaped


def test_parse_no_cgroups():
    with pytest.raises(OcirtError, match="no cgroup"):
        parse_mountinfo("22 1 0:20 / /sys rw - sysfs sysfs rw\n")


def test_named_v1_only_on_v2_host_is_v2():
    text = V2 + "50 40 0:40 / /run/legacy rw - cgroup cgroup rw,name=systemd\n"
    lay = parse_mountinfo(text)
    assert lay.kind == "v2" and lay.mounts == {}


def test_clean_path():
    assert clean_path("/a/../../b") == "/b"
    assert clean_path("../../x/./y") == "x/y"
    assert clean_path("a//b/") == "a/b"
    assert strip_root("/docker/abc/x", "/docker/abc") == "/x"
    assert strip_root("/other", "/docker/abc") == "/other"


OWN_HYBRID = parse_proc_cgroup(
    "5:memory:/process_api/h\n4:cpu,cpuacct:/\n3:cpuset:/\n2:freezer:/\n"
    "1:name=systemd:/user.slice/s\n0::/user.slice/s\n"
)


def test_placement_hybrid():
    lay = parse_mountinfo(HYBRID)
    cg = manager_for(lay, None, "c1", own=OWN_HYBRID)
    assert cg.paths["memory"] == "/sys/fs/cgroup/memory/process_api/h/c1"
    assert cg.paths["cpu"] == cg.paths["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/c1"
    assert cg.paths["name=systemd"] == "/sys/fs/cgroup/systemd/user.slice/s/c1"
    assert cg.unified == "/sys/fs/cgroup/unified/user.slice/s/c1"
    cg = manager_for(lay, "/abs/../x", "c1", own=OWN_HYBRID)
    assert cg.paths["memory"] == "/sys/fs/cgroup/memory/x"
    assert cg.unified == "/sys/fs/cgroup/unified/x"
    cg = manager_for(lay, "../../rel/y", "c1", own=OWN_HYBRID)
    assert cg.paths["memory"] == "/sys/fs/cgroup/memory/process_api/h/rel/y"


def test_placement_v2_uses_parent_of_own():
    lay = parse_mountinfo(V2)
    own = parse_proc_cgroup("0::/user.slice/user-0.slice/session-1.scope\n")
    cg = manager_for(lay, "a/b", "c1", own=own)
    assert cg.unified == "/sys/fs/cgroup/user.slice/user-0.slice/a/b"
    assert cg.paths == {}
    cg = manager_for(lay, None, "c1", own=parse_proc_cgroup("0::/\n"))
    assert cg.unified == "/sys/fs/cgroup/c1"
    cg = manager_for(lay, "/x/y", "c1", own=own)
    assert cg.unified == "/sys/fs/cgroup/x/y"


def test_placement_v1_mount_root():
    lay = parse_mountinfo(V1)
    own = parse_proc_cgroup("3:memory:/docker/abc/inner\n2:cpu:/\n1:pids:/\n")
    cg = manager_for(lay, None, "c1", own=own)
    assert cg.paths["memory"] == "/sys/fs/cgroup/memory/inner/c1"


def test_placement_errors():
    lay = parse_mountinfo(V2)
    with pytest.raises(ConfigError, match="/linux/cgroupsPath"):
        manager_for(lay, "/", "c1", own={})
    with pytest.raises(ConfigError, match="/linux/cgroupsPath"):
        manager_for(lay, "/..", "c1", own={})
    with pytest.raises(OcirtError):
        manager_for(lay, None, "../evil", own={})


def test_conversions():
    assert shares_to_weight(1024) == 100
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert 1 < shares_to_weight(512) < 100
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000
    assert blkio_weight_to_io_weight(500) == 1 + 490 * 9999 // 990
    assert swap_to_v2(None, -1, "/p") == -1
    assert swap_to_v2(200, 100, "/p") == 100
    assert swap_to_v2(100, 100, "/p") == 0
    assert swap_to_v2(-1, 100, "/p") == -1
    with pytest.raises(ConfigError, match="smaller"):
        swap_to_v2(50, 100, "/linux/resources/memory/swap")
    with pytest.raises(ConfigError, match="without a memory limit"):
        swap_to_v2(50, None, "/linux/resources/memory/swap")


def test_resources_parse():
    r = Resources.parse(
        {
            "memory": {"limit": 1 << 20, "swap": 0, "swappiness": 0},
            "cpu": {"shares": 0, "cpus": "0-1", "idle": 0},
            "pids": {"limit": 0},
            "blockIO": {"weight": 10, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}]},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "wr"},
            ],
            "unified": {"pids.max": "10"},
        }
    )
    assert r.memory.limit == 1 << 20 and r.memory.swap is None and r.memory.swappiness == 0
    assert r.cpu.shares is None and r.cpu.cpus == "0-1" and r.cpu.idle == 0
    assert r.pids_limit == 0
    assert (
        r.block_io.throttle["throttleReadBpsDevice"][0].ptr
        == "/linux/resources/blockIO/throttleReadBpsDevice/0"
    )
    assert [d.v1_line() for d in r.devices] == ["a", "c 1:3 rw"]


@pytest.mark.parametrize(
    "res,pointer",
    [
        ({"memory": {"limit": "1"}}, "/linux/resources/memory/limit"),
        ({"cpu": {"shares": -2}}, "/linux/resources/cpu/shares"),
        ({"cpu": {"quota": 1000, "burst": 2000}}, "/linux/resources/cpu/burst"),
        ({"memory": {"swappiness": 101}}, "/linux/resources/memory/swappiness"),
        ({"devices": [{"allow": True, "type": "x"}]}, "/linux/resources/devices/0/type"),
        ({"devices": [{"allow": True, "access": "rwx"}]}, "/linux/resources/devices/0/access"),
        ({"unified": {"a/b": "1"}}, "/linux/resources/unified/a~1b"),
        ({"unified": {"nodot": "1"}}, "/linux/resources/unified/nodot"),
        ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "/linux/resources/hugepageLimits/0/pageSize"),
        ({"rdma": {"mlx": {}}}, "/linux/resources/rdma/mlx"),
        (
            {"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}},
            "/linux/resources/blockIO/weightDevice/0",
        ),
    ],
)
def test_resources_parse_errors(res, pointer):
    with pytest.raises(ConfigError) as ei:
        Resources.parse(res)
    assert ei.value.pointer == pointer
