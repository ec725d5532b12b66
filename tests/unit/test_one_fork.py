"""One fork (stages.one_fork): where no user namespace is made or joined, no pid namespace
joined and no time namespace entered, create's parent forks the init itself, in a pid namespace
made for that child only (create.init_pid_ns), and goes back to its own right after the fork."""

import errno
import os

import pytest

from ocirt import create as create_mod
from ocirt import stages
from ocirt.errors import OcirtError
from ocirt.kernel import CLONE_NEWPID, PR_SET_DUMPABLE
from ocirt.kernel.fake import RecordingKernel
from ocirt.namespaces import Namespaces


def ns(new=(), join=()):
    return Namespaces(new=list(new), join=list(join))


class _Spec:
    def __init__(self, namespaces, one_fork=None):
        self.ns = namespaces
        self.one_fork = stages.one_fork(namespaces) if one_fork is None else one_fork


def test_one_fork_wherever_no_user_pid_join_or_time_namespace_needs_stage_1():
    assert stages.one_fork(ns(["pid", "network", "ipc", "uts", "mount", "cgroup"]))
    assert stages.one_fork(ns(["mount"]))  # the host's pid namespace: no pid namespace to make
    assert stages.one_fork(ns(["pid", "mount"], [("network", "/var/run/netns/x", 1)]))
    assert not stages.one_fork(ns(["user", "pid", "mount"]))
    assert not stages.one_fork(ns(["pid", "mount"], [("user", "/proc/1/ns/user", 0)]))
    assert not stages.one_fork(ns(["mount"], [("pid", "/proc/1/ns/pid", 0)]))
    assert not stages.one_fork(ns(["pid", "time", "mount"]))
    assert not stages.one_fork(ns(["pid", "mount"], [("time", "/proc/1/ns/time", 2)]))


def open_fds(kern) -> set:
    return set(kern._fds)  # what the recording kernel holds open


def steps(kern) -> list:
    """The calls that matter here: (name, first two arguments)."""
    return [
        (c.name, c.args[:2]) for c in kern.calls if c.name in ("prctl", "open", "unshare", "setns", "fork")
    ]


GET, SET = ("prctl", (3, 0)), "prctl"


def test_the_pid_namespace_is_made_for_the_next_child_born_non_dumpable_and_left_once():
    kern = RecordingKernel()
    own = create_mod.init_pid_ns(kern, _Spec(ns(["pid", "mount"])))
    assert open_fds(kern) == {own.fd}
    kern.fork()
    own.back(kern)
    own.back(kern)  # once: the fd is not used again (it may be another file by then)
    assert steps(kern) == [
        GET,
        (SET, (PR_SET_DUMPABLE, 0)),
        ("open", ("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)),
        ("unshare", (CLONE_NEWPID,)),
        ("fork", ()),
        ("setns", ("/proc/self/ns/pid", CLONE_NEWPID)),
        (SET, (PR_SET_DUMPABLE, 1)),
    ]
    assert open_fds(kern) == set()


def test_the_hosts_pid_namespace_still_a_non_dumpable_birth_and_nothing_without_one_fork():
    kern = RecordingKernel()
    own = create_mod.init_pid_ns(kern, _Spec(ns(["mount"])))
    own.back(kern)
    assert steps(kern) == [GET, (SET, (PR_SET_DUMPABLE, 0)), (SET, (PR_SET_DUMPABLE, 1))]
    kern = RecordingKernel()
    own = create_mod.init_pid_ns(kern, _Spec(ns(["user", "pid", "mount"])))
    own.back(kern)
    assert own.fd is None and kern.names() == []


def test_where_the_runtime_may_not_make_it_stage_1_does_and_a_failed_way_back_is_an_error():
    kern = RecordingKernel(fail={"unshare": OSError(errno.EPERM, "unshare")})
    spec = _Spec(ns(["pid"]))
    own = create_mod.init_pid_ns(kern, spec)
    assert own.fd is None and not spec.one_fork  # stage 1 makes the pid namespace after all
    assert steps(kern)[-1] == (SET, (PR_SET_DUMPABLE, 1)) and open_fds(kern) == set()
    kern = RecordingKernel()
    own = create_mod.init_pid_ns(kern, _Spec(ns(["pid"])))
    kern.fail["setns"] = OSError(errno.EINVAL, "setns")
    with pytest.raises(OcirtError, match="the runtime's own pid namespace"):
        own.back(kern)
    assert open_fds(kern) == set() and steps(kern)[-1] == (SET, (PR_SET_DUMPABLE, 1))
    own.back(kern)  # (create's failure path calls it again: nothing more)
    assert kern.names().count("setns") == 1


def test_the_init_of_one_fork_enters_every_namespace_but_pid():
    """The init's own start (stages.enter_namespaces with spec.one_fork): the parent made the
    pid namespace; the cgroup one waits for its move (moved_in)."""

    class Spec:
        def __init__(self, moved_in):
            self.ns = ns(["pid", "network", "mount", "cgroup"])
            self.one_fork, self.moved_in, self.time_offsets = True, moved_in, ""

    from ocirt.kernel import CLONE_NEWCGROUP, CLONE_NEWNET, CLONE_NEWNS

    for moved_in, flags in (
        (True, CLONE_NEWNS | CLONE_NEWNET),
        (False, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWCGROUP),
    ):
        kern = RecordingKernel()
        stages.enter_namespaces(kern, Spec(moved_in), stages.InitEffects(None))
        assert [c.args for c in kern.find("unshare")] == [(flags,)]


def test_exec_forks_its_process_itself_unless_the_container_has_a_time_namespace():
    from ocirt.kernel import CLONE_NEWNS, CLONE_NEWTIME
    from ocirt.process import ProcessSpec

    def spec(*flags):
        return stages.ExecSpec(
            ns_fds=[(10 + i, f) for i, f in enumerate(flags)], proc=ProcessSpec(args=["true"])
        )

    assert stages.exec_one_fork(spec(CLONE_NEWNS, CLONE_NEWPID))
    assert stages.exec_one_fork(spec())  # the host's namespaces: nothing to join
    assert not stages.exec_one_fork(spec(CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWTIME))


def test_exec_joins_the_containers_pid_namespace_for_its_process_and_goes_back():
    """Not dumpable from before the join until back(): the process forked meanwhile is born so
    (it shows in the container's /proc before it has sealed itself)."""
    from ocirt.children import child_pid_ns

    kern = RecordingKernel()
    theirs = kern.open("/proc/42/ns/pid", 0)
    own = child_pid_ns(kern, join=theirs)
    kern.fork()
    own.back(kern)
    assert steps(kern)[1:] == [
        GET,
        (SET, (PR_SET_DUMPABLE, 0)),
        ("open", ("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)),
        ("setns", ("/proc/42/ns/pid", CLONE_NEWPID)),
        ("fork", ()),
        ("setns", ("/proc/self/ns/pid", CLONE_NEWPID)),
        (SET, (PR_SET_DUMPABLE, 1)),
    ]


def test_a_process_dumpable_only_as_suid_dumpable_says_stays_non_dumpable():
    """PR_GET_DUMPABLE may say 2 (fs.suid_dumpable's mode), which PR_SET_DUMPABLE refuses:
    the way back leaves the process at 0 rather than fail the create."""

    class Kern(RecordingKernel):
        def prctl(self, option, arg2=0, *args):
            super().prctl(option, arg2, *args)
            if option == PR_SET_DUMPABLE and arg2 not in (0, 1):
                raise OSError(errno.EINVAL, "prctl")
            return 2 if option == 3 else 0

    kern = Kern()
    own = create_mod.init_pid_ns(kern, _Spec(ns(["pid"])))
    own.back(kern)
    assert steps(kern)[-1] == ("setns", ("/proc/self/ns/pid", CLONE_NEWPID))
    assert [a for name, a in steps(kern) if name == "prctl"] == [(3, 0), (PR_SET_DUMPABLE, 0)]
