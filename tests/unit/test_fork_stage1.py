"""create.fork_stage1: stage 1 is made in the container's cgroup where the kernel can (a single
cgroup v2 directory, a process with no other thread), else forked and moved."""

import errno

from ocirt import cgroups, create
from ocirt.kernel.fake import RecordingKernel


class Effects(create.HostEffects):
    def __init__(self, alone: bool):
        super().__init__()
        self._alone = alone

    def alone(self) -> bool:
        return self._alone


def manager(kind: str):
    layout = (
        cgroups.Layout("v2", unified="/sys/fs/cgroup")
        if kind == "v2"
        else cgroups.Layout(kind, mounts={"pids": "/sys/fs/cgroup/pids"}, unified="/sys/fs/cgroup/unified")
    )
    return cgroups.manager_for(layout, "/ocirt-test/c1", "c1")


def test_v2_stage1_is_born_in_the_cgroup():
    kern = RecordingKernel()
    pid, placed = create.fork_stage1(kern, Effects(alone=True), manager("v2"))
    assert placed and kern.names() == ["fork_into"]
    assert kern.find("fork_into")[0].args == ("/sys/fs/cgroup/ocirt-test/c1",)


def test_hybrid_and_v1_stage1_is_forked_and_moved():
    for kind in ("hybrid", "v1"):
        kern = RecordingKernel()
        _pid, placed = create.fork_stage1(kern, Effects(alone=True), manager(kind))
        assert not placed and kern.names() == ["fork"]


def test_with_another_thread_stage1_is_forked_and_moved():
    kern = RecordingKernel()
    _pid, placed = create.fork_stage1(kern, Effects(alone=False), manager("v2"))
    assert not placed and kern.names() == ["fork"]


def test_a_kernel_without_clone3_into_a_cgroup_forks():
    kern = RecordingKernel(fail={"fork_into": OSError(errno.ENOSYS, "clone3")})
    _pid, placed = create.fork_stage1(kern, Effects(alone=True), manager("v2"))
    assert not placed and kern.names() == ["fork_into", "fork"]


def test_exec_with_an_initial_affinity_forks_and_moves():
    """exec passes no cgroup when execCPUAffinity.initial must apply before the cgroup's."""
    from ocirt.children import fork_in

    kern = RecordingKernel()
    _pid, placed = fork_in(kern, None, lambda: True, kern.fork)
    assert not placed and kern.names() == ["fork"]
