"""ocirt.seccomp without root: compile() checks, the filters libseccomp builds (read back as pseudo
filter code), unknown syscalls, the listener message, and the cost of importing the module."""

import copy
import errno
import json
import os
import socket
import subprocess
import sys

import pytest

from ocirt import seccomp
from ocirt.errors import ConfigError, OcirtError

P = "/linux/seccomp"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Made for these tests in the style of the profiles engines ship: default deny with EPERM, a big
# allow list, and rules that allow a syscall only for some argument values.
ALLOWED = """accept accept4 access alarm bind brk capget capset chdir chmod chown clock_getres
clock_gettime clock_nanosleep close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_wait eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fallocate fchdir fchmod fchmodat fchown fchownat fcntl
fdatasync flock fork fstat fstatfs fsync ftruncate futex getcwd getdents getdents64 getegid
geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresuid getrlimit getrusage getsid getsockname getsockopt gettid
gettimeofday getuid getxattr inotify_add_watch inotify_init1 inotify_rm_watch ioctl kill lchown
link linkat listen lseek lstat madvise memfd_create mkdir mkdirat mmap mprotect mremap munmap
nanosleep newfstatat open openat openat2 pause pipe pipe2 poll ppoll prctl pread64 preadv
prlimit64 pselect6 pwrite64 pwritev read readlink readlinkat readv recvfrom recvmmsg recvmsg
rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait sched_getaffinity sched_yield
select sendfile sendmmsg sendmsg sendto set_robust_list set_tid_address setgid setgroups
setitimer setpgid setpriority setregid setresgid setresuid setreuid setsid setsockopt setuid
shutdown sigaltstack socketpair stat statfs statx symlink symlinkat sync tgkill time
timer_create timer_delete timer_settime timerfd_create timerfd_settime times tkill truncate
umask uname unlink unlinkat utime utimensat vfork wait4 waitid write writev""".split()

CLONE_NS_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET


def docker_like() -> dict:
    rules = [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]
    for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        rules.append(
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}],
            }
        )
    rules.append(
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    )
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    rules.append(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}],
        }
    )  # not AF_VSOCK
    rules.append({"names": ["arch_prctl", "modify_ldt"], "action": "SCMP_ACT_ALLOW"})
    for cap_names in (
        ["bpf", "perf_event_open"],
        ["mount", "umount2", "pivot_root"],
        ["setns", "unshare"],
        ["ptrace"],
        ["reboot"],
        ["sethostname", "setdomainname"],
        ["init_module", "finit_module", "delete_module"],
        ["kexec_load"],
        ["syslog"],
        ["settimeofday", "clock_settime", "adjtimex"],
    ):
        rules.append({"names": cap_names, "action": "SCMP_ACT_ERRNO"})
    rules.append(
        {"names": ["sync_file_range2", "arm_fadvise64_64", "s390_pci_mmio_read"], "action": "SCMP_ACT_ALLOW"}
    )  # other arches only
    rules.append(
        {
            "names": ["msync", "mlock2"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 2, "value": 0x4, "valueTwo": 0x4, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    )
    rules.append(
        {
            "names": ["kcmp"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {"index": 2, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 0, "op": "SCMP_CMP_GT"},
            ],
        }
    )
    rules.append(
        {
            "names": ["ioprio_set"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_LE"}],
        }
    )
    rules.append(
        {
            "names": ["fanotify_init"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LT"}],
        }
    )
    rules.append(
        {
            "names": ["msgget"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 1, "value": 0o600, "op": "SCMP_CMP_GE"}],
        }
    )
    rules.append({"names": ["chroot"], "action": "SCMP_ACT_LOG"})
    rules.append({"names": ["acct"], "action": "SCMP_ACT_KILL_PROCESS"})
    rules.append({"names": ["quotactl"], "action": "SCMP_ACT_TRACE", "errnoRet": 7})
    rules.append({"names": ["lookup_dcookie"], "action": "SCMP_ACT_TRAP"})
    rules.append({"names": ["vhangup"], "action": "SCMP_ACT_KILL"})
    rules.append({"names": ["nfsservctl"], "action": "SCMP_ACT_KILL_THREAD"})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": rules,
    }


def allow(*rules, **top) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **top}


def pfc(cfg: dict) -> str:
    return seccomp.compile(cfg).export_pfc()


def native_pfc_block(text: str, syscall: str) -> str:
    """The pseudo filter code of one syscall in the first (native) arch section."""
    lines, out, inside = text.splitlines(), [], False
    for line in lines:
        if line.strip().startswith("# filter for syscall"):
            if inside:
                break
            inside = f'"{syscall}"' in line
        elif line.strip().startswith(("# default action", "# filter for arch")) and inside:
            break
        if inside:
            out.append(line)
    return "\n".join(out)


# --- errors: compile() names the config.json member that is wrong ------------------------------

NOTIFY = {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}

ERRORS = [
    ("not an object", ["SCMP_ACT_ALLOW"], P, "must be an object"),
    ("no default", {"syscalls": []}, f"{P}/defaultAction", "required"),
    ("unknown default", {"defaultAction": "SCMP_ACT_BOGUS"}, f"{P}/defaultAction", "unknown seccomp action"),
    (
        "unknown action",
        allow({"names": ["mkdir"], "action": "SCMP_ACT_DENY"}),
        f"{P}/syscalls/0/action",
        "unknown seccomp action 'SCMP_ACT_DENY'",
    ),
    ("no action", allow({"names": ["mkdir"]}), f"{P}/syscalls/0/action", "required"),
    (
        "unknown arch",
        {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", "x86_64"]},
        f"{P}/architectures/1",
        "unknown seccomp architecture 'x86_64'",
    ),
    (
        "unknown flag",
        {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "TSYNC"]},
        f"{P}/flags/1",
        "unknown seccomp flag 'TSYNC'",
    ),
    (
        "bad op",
        allow(
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]},
        ),
        f"{P}/syscalls/1/args/0/op",
        "unknown seccomp operator 'EQ'",
    ),
    (
        "index too big",
        allow(
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}],
            }
        ),
        f"{P}/syscalls/0/args/0/index",
        "from 0 to 5",
    ),
    (
        "no value",
        allow({"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}),
        f"{P}/syscalls/0/args/0/value",
        "required",
    ),
    (
        "negative value",
        allow(
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}],
            }
        ),
        f"{P}/syscalls/0/args/0/value",
        "unsigned 64-bit",
    ),
    (
        "valueTwo too big",
        allow(
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 1, "valueTwo": 1 << 64, "op": "SCMP_CMP_MASKED_EQ"}],
            }
        ),
        f"{P}/syscalls/0/args/0/valueTwo",
        "unsigned 64-bit",
    ),
    (
        "errnoRet with kill",
        allow({"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}),
        f"{P}/syscalls/0/errnoRet",
        "SCMP_ACT_KILL does not take an errno return code",
    ),
    (
        "errnoRet with allow",
        {
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}],
        },
        f"{P}/syscalls/0/errnoRet",
        "SCMP_ACT_ALLOW does not take",
    ),
    (
        "errnoRet with notify",
        allow(
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY", "errnoRet": 1}, listenerPath="/run/agent.sock"
        ),
        f"{P}/syscalls/0/errnoRet",
        "SCMP_ACT_NOTIFY does not take",
    ),
    (
        "defaultErrnoRet with allow",
        {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
        f"{P}/defaultErrnoRet",
        "SCMP_ACT_ALLOW does not take",
    ),
    (
        "defaultErrnoRet with log",
        {"defaultAction": "SCMP_ACT_LOG", "defaultErrnoRet": 0},
        f"{P}/defaultErrnoRet",
        "SCMP_ACT_LOG does not take",
    ),
    (
        "errno too big",
        allow({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4095}),
        f"{P}/syscalls/0/errnoRet",
        "from 0 to 4094",
    ),
    (
        "trace msg too big",
        allow({"names": ["mkdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 65536}),
        f"{P}/syscalls/0/errnoRet",
        "from 0 to 65535",
    ),
    (
        "default errno too big",
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000},
        f"{P}/defaultErrnoRet",
        "from 0 to 4094",
    ),
    (
        "notify without listenerPath",
        allow({"names": ["read"], "action": "SCMP_ACT_ALLOW"}, NOTIFY),
        f"{P}/listenerPath",
        "required when SCMP_ACT_NOTIFY is used (/linux/seccomp/syscalls/1/action)",
    ),
    (
        "notify as default",
        {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"},
        f"{P}/defaultAction",
        "SCMP_ACT_NOTIFY cannot be used as the default action",
    ),
    (
        "notify write",
        allow({"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}, listenerPath="/a.sock"),
        f"{P}/syscalls/0/names/1",
        "cannot be used for the write syscall",
    ),
    (
        "notify sendmsg",
        allow({"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}, listenerPath="/a.sock"),
        f"{P}/syscalls/0/names/0",
        "cannot be used for the sendmsg syscall",
    ),
    (
        "metadata without path",
        {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"},
        f"{P}/listenerMetadata",
        "must not be set without listenerPath",
    ),
    (
        "empty listenerPath",
        {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": ""},
        f"{P}/listenerPath",
        "non-empty",
    ),
    (
        "no names",
        allow({"names": [], "action": "SCMP_ACT_ERRNO"}),
        f"{P}/syscalls/0/names",
        "non-empty array",
    ),
    (
        "empty name",
        allow({"names": ["mkdir", ""], "action": "SCMP_ACT_ERRNO"}),
        f"{P}/syscalls/0/names/1",
        "non-empty string",
    ),
    ("rule not an object", allow("mkdir"), f"{P}/syscalls/0", "must be an object"),
    (
        "args not an array",
        allow({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": {}}),
        f"{P}/syscalls/0/args",
        "must be an array",
    ),
]


@pytest.mark.parametrize("cfg,pointer,rule", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_compile_errors_name_the_member(cfg, pointer, rule):
    with pytest.raises(ConfigError) as exc:
        seccomp.compile(cfg)
    assert exc.value.pointer == pointer
    assert rule in exc.value.rule
    assert str(exc.value).startswith(f"config.json: {pointer}: ")


def test_pointer_prefix_is_the_callers():
    with pytest.raises(ConfigError) as exc:
        seccomp.compile({"defaultAction": "nope"}, pointer="/process/seccomp")
    assert exc.value.pointer == "/process/seccomp/defaultAction"


# --- valid profiles ------------------------------------------------------------------------------


def test_spec_example_compiles():
    flt = seccomp.compile(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ERRNO"}],
        }
    )
    text = flt.export_pfc()
    assert "ERRNO(1)" in text and "filter for arch x86 " in text
    assert flt.notify is False and flt.unknown_syscalls == []
    assert len(flt.export_bpf()) % 8 == 0


def test_docker_like_profile_compiles():
    cfg = docker_like()
    assert len(cfg["syscalls"]) >= 30
    flt = seccomp.compile(cfg)
    text = flt.export_pfc()
    assert flt.default_action == seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.EPERM
    # arch-specific names unknown to libseccomp on no arch are dropped; the others are not
    assert flt.unknown_syscalls == []
    for arch in ("x86_64", "x86", "x32"):
        assert f"filter for arch {arch} " in text
    # msync: MASKED_EQ with value = mask and valueTwo = datum
    assert "& 0x00000004 == 4" in native_pfc_block(text, "msync")
    # clone: allowed only without namespace flags
    assert "& 0x7e020000 == 0" in native_pfc_block(text, "clone")
    assert "ERRNO(38)" in native_pfc_block(text, "clone3")
    # personality: five alternatives on the same argument
    assert native_pfc_block(text, "personality").count("action ALLOW") == 5
    assert "TRACE(7)" in text and "KILL_PROCESS" in text and "TRAP" in text and "LOG" in text


def test_rules_equal_to_the_default_are_skipped():
    text = pfc(
        allow(
            {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}, {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}
        )
    )
    assert '"mkdir"' not in text and '"rmdir"' in text
    # the errno is part of the action: ERRNO(EPERM) default, ERRNO(ENOENT) rule is kept
    text = pfc(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            ],
        }
    )
    assert '"mkdir"' not in text and "ERRNO(2)" in text


def test_conditions_on_distinct_arguments_are_anded():
    block = native_pfc_block(
        pfc(
            allow(
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [
                        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                    ],
                }
            )
        ),
        "kill",
    )
    assert block.count("action ERRNO(1)") == 1
    assert "$a0" in block and "$a1" in block


def test_conditions_on_the_same_argument_are_split_as_runc_does():
    block = native_pfc_block(
        pfc(
            allow(
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [
                        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                        {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                    ],
                }
            )
        ),
        "kill",
    )
    assert block.count("action ERRNO(1)") == 3


@pytest.mark.parametrize(
    "op,expect",
    [
        ("SCMP_CMP_NE", "!="),
        ("SCMP_CMP_LT", "<"),
        ("SCMP_CMP_LE", "<="),
        ("SCMP_CMP_EQ", "=="),
        ("SCMP_CMP_GE", ">="),
        ("SCMP_CMP_GT", ">"),
        ("SCMP_CMP_MASKED_EQ", "&"),
    ],
)
def test_every_operator(op, expect):
    block = native_pfc_block(
        pfc(
            allow(
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 1, "value": 15, "valueTwo": 3, "op": op}],
                }
            )
        ),
        "kill",
    )
    assert "$a1" in block and "ERRNO(1)" in block
    # libseccomp may print a comparison as its negation (e.g. `<` as `>=` with swapped branches)
    assert (
        expect in block or {"!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}.get(expect, "?") in block
    )


@pytest.mark.parametrize(
    "action,text",
    [
        ("SCMP_ACT_KILL", "KILL"),
        ("SCMP_ACT_KILL_THREAD", "KILL"),
        ("SCMP_ACT_KILL_PROCESS", "KILL_PROCESS"),
        ("SCMP_ACT_TRAP", "TRAP"),
        ("SCMP_ACT_ERRNO", "ERRNO(1)"),
        ("SCMP_ACT_TRACE", "TRACE(1)"),
        ("SCMP_ACT_LOG", "LOG"),
        ("SCMP_ACT_ALLOW", "ALLOW"),
    ],
)
def test_every_action(action, text):
    cfg = {
        "defaultAction": "SCMP_ACT_ALLOW" if action != "SCMP_ACT_ALLOW" else "SCMP_ACT_LOG",
        "syscalls": [{"names": ["mkdir"], "action": action}],
    }
    assert f"action {text};" in native_pfc_block(pfc(cfg), "mkdir")


def test_notify_compiles_with_listener():
    flt = seccomp.compile(allow(NOTIFY, listenerPath="/run/agent.sock", listenerMetadata="m"))
    assert flt.notify is True and flt.listener_path == "/run/agent.sock" and flt.listener_metadata == "m"
    assert "action 0x7fc00000;" in native_pfc_block(flt.export_pfc(), "mkdir")  # pfc has no name for it


def test_listener_path_without_notify_is_ignored():
    flt = seccomp.compile(
        allow({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}, listenerPath="/run/agent.sock")
    )
    assert flt.notify is False


@pytest.mark.parametrize("value", [0, 38, 4094])
def test_errno_values(value):
    block = native_pfc_block(
        pfc(allow({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": value})), "mkdir"
    )
    assert f"ERRNO({value})" in block


def test_default_errno_ret():
    text = pfc(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
        }
    )
    assert text.split("# default action")[1].split("\n")[1].strip() == "action ERRNO(38);"


def test_flags_compile():
    flt = seccomp.compile({"defaultAction": "SCMP_ACT_ALLOW", "flags": list(seccomp.FLAGS)})
    # without SCMP_ACT_NOTIFY there is no listener for WAIT_KILLABLE_RECV to apply to
    assert flt.ignored_flags == ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]


def test_wait_killable_recv_with_notify():
    flt = seccomp.compile(
        allow(NOTIFY, listenerPath="/a.sock", flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    )
    assert flt.ignored_flags == []
    if tuple(map(int, seccomp.libseccomp_version().split("."))) < (2, 6, 0):
        # libseccomp cannot set it: install() loads the exported program with seccomp(2) itself
        assert flt._bpf == flt.export_bpf()
        assert flt._load_flags == (
            seccomp.SECCOMP_FILTER_FLAG_NEW_LISTENER | seccomp.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        )


# --- names and architectures libseccomp does not know --------------------------------------------


def test_unknown_syscalls_are_skipped_as_runc_does():
    flt = seccomp.compile(
        allow(
            {"names": ["mkdir", "no_such_syscall", "rmdir", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["another_unknown"], "action": "SCMP_ACT_KILL"},
        )
    )
    assert flt.unknown_syscalls == ["no_such_syscall", "another_unknown"]
    text = flt.export_pfc()
    assert '"mkdir"' in text and '"rmdir"' in text and "KILL" not in text.split("# invalid architecture")[0]


def test_rule_of_only_unknown_syscalls_compiles_to_the_default():
    flt = seccomp.compile(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {
                    "names": ["future_syscall_9000"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}],
                }
            ],
        }
    )
    assert flt.unknown_syscalls == ["future_syscall_9000"]
    assert "filter for syscall" not in flt.export_pfc()


def test_architectures_this_libseccomp_does_not_know_are_skipped():
    flt = seccomp.compile(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K"],
        }
    )
    known = set(seccomp.features()["archs"])
    assert flt.skipped_architectures == [
        a for a in ("SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K") if a not in known
    ]


def test_native_architecture_twice_is_fine():
    seccomp.compile(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        }
    )


# --- the listener message ------------------------------------------------------------------------

STATE = {
    "ociVersion": "1.3.0",
    "id": "c1",
    "status": "creating",
    "pid": 4242,
    "bundle": "/b",
    "annotations": {"k": "v"},
}


def test_send_to_listener(tmp_path):
    path = str(tmp_path / "agent.sock")
    flt = seccomp.compile(allow(NOTIFY, listenerPath=path, listenerMetadata="MKNOD=/dev/null"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        flt.send_to_listener(fd, STATE)
        with pytest.raises(OSError):
            os.fstat(fd)  # closed by send_to_listener
        conn, _ = server.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            while chunk := conn.recv(65536):
                data += chunk
    try:
        assert len(fds) == 1 and os.path.samestat(os.fstat(fds[0]), os.stat("/dev/null"))
    finally:
        for f in fds:
            os.close(f)
    msg = json.loads(data)
    assert msg == {
        "ociVersion": "1.3.0",
        "fds": ["seccompFd"],
        "pid": 4242,
        "metadata": "MKNOD=/dev/null",
        "state": STATE,
    }


def test_send_to_missing_listener_fails_and_closes_the_fd(tmp_path):
    flt = seccomp.compile(allow(NOTIFY, listenerPath=str(tmp_path / "nobody.sock")))
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    with pytest.raises(OcirtError) as exc:
        flt.send_to_listener(fd, STATE)
    assert exc.value.errno == errno.ENOENT and "seccomp agent" in str(exc.value)
    with pytest.raises(OSError):
        os.fstat(fd)


# --- cost and packaging --------------------------------------------------------------------------


def test_import_loads_neither_cffi_nor_libseccomp():
    code = (
        "import sys, ocirt.seccomp; "
        "bad = [m for m in ('cffi', '_cffi_backend', 'ocirt.kernel._libseccomp', 'dataclasses', 'json', "
        "'socket') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runtime_fallback_parses_the_cdefs(monkeypatch):
    cfg = docker_like()
    built = pfc(copy.deepcopy(cfg))
    monkeypatch.setitem(sys.modules, "ocirt.kernel._libseccomp", None)  # import fails: not built
    assert pfc(cfg) == built


def test_out_of_line_build_script(tmp_path):
    out = tmp_path / "_libseccomp_test.py"
    code = (
        "import runpy, sys; ns = runpy.run_path('ocirt/kernel/_seccomp_build.py'); "
        f"ns['ffibuilder'].emit_python_code({str(out)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    ns: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), ns)  # noqa: S102 - the generated module
    lib = ns["ffi"].dlopen("libseccomp.so.2")
    assert lib.seccomp_syscall_resolve_name(b"mkdir") > 0


def test_features():
    f = seccomp.features()
    assert f["enabled"] is True
    assert set(f["actions"]) == set(seccomp.ACTIONS)
    assert set(f["operators"]) == set(seccomp.OPERATORS)
    assert f["knownFlags"] == list(seccomp.FLAGS)
    assert set(f["supportedFlags"]) <= set(seccomp.FLAGS)
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"} <= set(f["archs"]) <= set(seccomp.ARCHITECTURES)


def test_enosys_prefix_jumps_stay_inside_the_prefix():
    import struct

    from ocirt.seccomp import enosys_prefix

    assert enosys_prefix({}) == b""
    prog = enosys_prefix({0x40000003: 435, 0xC000003E: 439})
    insns = [struct.unpack("=HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    assert insns[0] == (0x20, 0, 0, 4)  # the architecture first
    assert insns[-1] == (0x06, 0, 0, 0x00050000 | 38)  # ERRNO(ENOSYS)
    for i, (code, jt, jf, _k) in enumerate(insns):
        if code & 0x07 == 0x05 and code != 0x05:  # conditional jumps: to the ret or past it
            assert i + 1 + jt <= len(insns) and i + 1 + jf <= len(insns)
