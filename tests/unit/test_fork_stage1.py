"""children.fork_in (create's stage 1, exec's): the child is made in the container's cgroup
where the kernel can (a single cgroup v2 directory, a process with no other thread), else forked
and moved."""

import errno

from ocirt import cgroups
from ocirt.children import fork_in
from ocirt.kernel.fake import RecordingKernel


def fork_stage1(kern, alone: bool, cg):
    """As create's run_children forks stage 1."""
    return fork_in(kern, cg, lambda: alone, kern.fork)


def manager(kind: str):
    layout = (
        cgroups.Layout("v2", unified="/sys/fs/cgroup")
        if kind == "v2"
        else cgroups.Layout(kind, mounts={"pids": "/sys/fs/cgroup/pids"}, unified="/sys/fs/cgroup/unified")
    )
    return cgroups.manager_for(layout, "/ocirt-test/c1", "c1")


def test_v2_stage1_is_born_in_the_cgroup():
    kern = RecordingKernel()
    pid, placed = fork_stage1(kern, True, manager("v2"))
    assert placed and kern.names() == ["fork_into"]
    assert kern.find("fork_into")[0].args == ("/sys/fs/cgroup/ocirt-test/c1",)


def test_hybrid_and_v1_stage1_is_forked_and_moved():
    for kind in ("hybrid", "v1"):
        kern = RecordingKernel()
        _pid, placed = fork_stage1(kern, True, manager(kind))
        assert not placed and kern.names() == ["fork"]


def test_with_another_thread_stage1_is_forked_and_moved():
    kern = RecordingKernel()
    _pid, placed = fork_stage1(kern, False, manager("v2"))
    assert not placed and kern.names() == ["fork"]


def test_a_kernel_without_clone3_into_a_cgroup_forks():
    kern = RecordingKernel(fail={"fork_into": OSError(errno.ENOSYS, "clone3")})
    _pid, placed = fork_stage1(kern, True, manager("v2"))
    assert not placed and kern.names() == ["fork_into", "fork"]


def test_exec_with_an_initial_affinity_forks_and_moves():
    """exec passes no cgroup when execCPUAffinity.initial must apply before the cgroup's."""
    kern = RecordingKernel()
    _pid, placed = fork_in(kern, None, lambda: True, kern.fork)
    assert not placed and kern.names() == ["fork"]
