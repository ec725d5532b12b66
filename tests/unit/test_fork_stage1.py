"""children.fork_placed (create's stage 1 or init, exec's process): the child is born in the
cgroup2 directory where the kernel can (a process with no other thread), moves itself into each
v1 hierarchy (Manager.self_placement), else is forked and moved by the parent."""

import errno

from ocirt import cgroups
from ocirt.children import fork_placed, open_self_moves
from ocirt.kernel.fake import RecordingKernel


def manager(kind: str):
    layout = (
        cgroups.Layout("v2", unified="/sys/fs/cgroup")
        if kind == "v2"
        else cgroups.Layout(kind, mounts={"pids": "/sys/fs/cgroup/pids"}, unified="/sys/fs/cgroup/unified")
    )
    return cgroups.manager_for(layout, "/ocirt-test/c1", "c1")


def test_v2_stage1_is_born_in_the_cgroup():
    kern = RecordingKernel()
    born_in, moves = manager("v2").self_placement()
    pid, placed = fork_placed(kern, born_in, lambda: True, kern.fork)
    assert placed and moves == [] and kern.names() == ["fork_into"]
    assert kern.find("fork_into")[0].args == ("/sys/fs/cgroup/ocirt-test/c1",)


# --- each manager's self_placement, and the child's ways in ---


def test_self_placement_of_each_kind():
    assert manager("v2").self_placement() == ("/sys/fs/cgroup/ocirt-test/c1", [])
    assert manager("hybrid").self_placement() == (
        "/sys/fs/cgroup/unified/ocirt-test/c1",
        ["/sys/fs/cgroup/pids/ocirt-test/c1/tasks"],
    )
    v1 = cgroups.manager_for(
        cgroups.Layout("v1", mounts={"pids": "/sys/fs/cgroup/pids"}), "/ocirt-test/c1", "c1"
    )
    assert v1.self_placement() == (None, ["/sys/fs/cgroup/pids/ocirt-test/c1/tasks"])


def test_born_in_the_cgroup2_directory_then_its_own_moves():
    kern = RecordingKernel()
    _pid, placed = fork_placed(kern, "/sys/fs/cgroup/unified/c1", lambda: True, kern.fork)
    assert placed and kern.names() == ["fork_into"]


def test_on_v1_an_ordinary_fork_and_its_own_moves_are_all():
    kern = RecordingKernel()
    _pid, placed = fork_placed(kern, None, lambda: True, kern.fork)
    assert placed and kern.names() == ["fork"]


def test_without_the_birth_the_parent_moves_it():
    kern = RecordingKernel()
    assert fork_placed(kern, "/u/c1", lambda: False, kern.fork)[1] is False  # another thread
    kern = RecordingKernel(fail={"fork_into": OSError(errno.ENOSYS, "clone3")})
    _pid, placed = fork_placed(kern, "/u/c1", lambda: True, kern.fork)
    assert not placed and kern.names() == ["fork_into", "fork"]


def test_the_tasks_files_are_opened_all_or_none():
    kern = RecordingKernel()
    fds = open_self_moves(kern, (None, ["/a/tasks", "/b/tasks"]))
    assert fds is not None and len(fds) == 2
    kern.move_self(fds[0])
    assert kern.find("move_self")[0].args == ("/a/tasks",)

    class Refusing(RecordingKernel):
        def open(self, path, flags, mode=0o777, dir_fd=None):
            if path == "/b/tasks":
                raise PermissionError(13, "denied")
            return super().open(path, flags, mode, dir_fd)

    kern = Refusing()
    assert open_self_moves(kern, (None, ["/a/tasks", "/b/tasks"])) is None
    assert kern._fds == {}  # the one opened was closed
