"""Security settings of the process and the container (config.md, config-linux.md): the five
capability sets, noNewPrivileges, the LSM fields (apparmorProfile, selinuxLabel, mountLabel),
seccomp end to end, and the same confinement for processes started with `exec`."""

import errno
import json
import os
import shutil
import subprocess

import pytest
from runtime import assert_failed_cleanly, ok, one_line, sh, wait_for

# capabilities(7), by number
CAP_NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
CAP = {"CAP_" + n: i for i, n in enumerate(CAP_NAMES)}
CAP_SETS = {
    "bounding": "CapBnd",
    "effective": "CapEff",
    "permitted": "CapPrm",
    "inheritable": "CapInh",
    "ambient": "CapAmb",
}
SLEEP = ["sleep", "1000"]


def cap_last_cap():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def capmask(names):
    return sum(1 << CAP[n] for n in names)


def status_fields(out):
    """{field: value} of /proc/self/status text."""
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def caps_of(out):
    st = status_fields(out)
    return {s: int(st[field], 16) for s, field in CAP_SETS.items()}


def describe(mask):
    return sorted(
        f"CAP_{CAP_NAMES[i]}" if i < len(CAP_NAMES) else str(i) for i in range(64) if mask & (1 << i)
    )


def assert_caps(out, want):
    """want: {set: [names]}; every set of /proc/self/status must be exactly that."""
    got = caps_of(out)
    for s, names in want.items():
        assert got[s] == capmask(names), f"{CAP_SETS[s]}: {describe(got[s])} != {sorted(names)}"


def process(**fields):
    def mutate(c):
        c["process"].update(fields)

    return mutate


def rexec(rt, cid, *args, extra=(), **kw):
    """`exec [extra...] <cid> <args...>` (foreground)."""
    return rt("exec", *extra, cid, *args, **kw)


# ---- capabilities ----------------------------------------------------------------------------------------

# Chosen so that the kernel's exec rules leave every set exactly as configured for uid 0 with
# no_new_privs: P'(permitted) = (bounding | inheritable) & P(permitted) = permitted (permitted is
# in bounding), effective = permitted, ambient (in permitted & inheritable) is kept.
ROOT_CAPS = {
    "bounding": [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_AUDIT_WRITE",
    ],
    "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "ambient": ["CAP_NET_BIND_SERVICE"],
}


def test_capabilities_all_five_sets(run_in):
    out = ok(run_in(sh("cat /proc/self/status"), process={"capabilities": ROOT_CAPS}))
    assert_caps(out, ROOT_CAPS)


def test_capabilities_empty_sets(run_in):
    """Empty lists: the process has no capability at all, even as uid 0."""
    caps = {s: [] for s in CAP_SETS}
    out = ok(
        run_in(
            sh("cat /proc/self/status; chown 1:1 /tmp 2>&1 || echo chown-denied"),
            process={"capabilities": caps},
        )
    )
    assert_caps(out, caps)
    assert "chown-denied" in out


# A non-root user keeps what the config grants through the uid switch: after exec, a process
# without file capabilities has P'(permitted) = P'(effective) = ambient (capabilities(7)).
USER_CAPS = {
    "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"],
    "effective": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
    "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
    "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
    "ambient": ["CAP_NET_BIND_SERVICE"],
}
USER_CAPS_AFTER_EXEC = {
    "bounding": USER_CAPS["bounding"],
    "effective": ["CAP_NET_BIND_SERVICE"],
    "permitted": ["CAP_NET_BIND_SERVICE"],
    "inheritable": USER_CAPS["inheritable"],
    "ambient": ["CAP_NET_BIND_SERVICE"],
}
# Binding port 80 needs CAP_NET_BIND_SERVICE (net.ipv4.ip_unprivileged_port_start is 1024 in a new netns).
# (busybox nc listens on IPv6 when it can: look in both tables.)
BIND_80 = (
    "nc -l -p 80 </dev/null >/dev/null 2>/tmp/nc.err & pid=$!; i=0; "
    "while [ $i -lt 50 ] && ! cat /proc/net/tcp* | grep -q ':0050 '; do sleep 0.05; i=$((i+1)); done; "
    "cat /proc/net/tcp* | grep -q ':0050 ' && echo BOUND-80 || { echo NOT-BOUND; cat /tmp/nc.err; }; "
    "kill $pid 2>/dev/null; wait"
)


def non_root(uid=1000, gid=1000, **caps):
    def mutate(c):
        c["process"]["user"] = {"uid": uid, "gid": gid}
        c["process"]["capabilities"] = caps or USER_CAPS

    return mutate


def test_capabilities_kept_across_uid_switch(run_in):
    out = ok(run_in(sh("cat /proc/self/status; " + BIND_80), mutate=non_root()))
    st = status_fields(out)
    assert st["Uid"].split() == ["1000"] * 4
    assert_caps(out, USER_CAPS_AFTER_EXEC)
    assert "BOUND-80" in out, out


def test_non_root_without_ambient_has_no_effective_caps(run_in):
    """Without ambient capabilities an exec'd non-root process has none in effect (the kernel's rule):
    the runtime must not make up for it, and binding a low port fails."""
    caps = dict(USER_CAPS, ambient=[])
    out = ok(run_in(sh("cat /proc/self/status; " + BIND_80), mutate=non_root(**caps)))
    got = caps_of(out)
    assert got["effective"] == got["permitted"] == got["ambient"] == 0, out
    assert got["bounding"] == capmask(caps["bounding"])
    assert "NOT-BOUND" in out


def test_capabilities_unknown_name_warns(make_runtime, make_bundle, tmp_path):
    """config.md: capabilities that cannot be mapped MUST be logged as a warning; runtimes SHOULD NOT fail.
    The warning goes to stderr, or to the --log file when there is one."""
    caps = {s: ["CAP_KILL", "CAP_CONFORMANCE_BOGUS"] for s in ("bounding", "effective", "permitted")}
    b = make_bundle(sh("cat /proc/self/status"), process={"capabilities": caps})
    rt = make_runtime()
    p = rt.run(b.id, b)
    out = ok(p)
    assert "CAP_CONFORMANCE_BOGUS" in p.stderr and "warn" in p.stderr.lower(), p.stderr
    assert caps_of(out)["effective"] == capmask(["CAP_KILL"])

    log = tmp_path / "runtime.log"
    rt_log = make_runtime(global_args=["--log", str(log)])
    b2 = make_bundle(["true"], process={"capabilities": caps})
    ok(rt_log.run(b2.id, b2))
    text = log.read_text()
    assert "CAP_CONFORMANCE_BOGUS" in text and "warn" in text.lower(), text


def test_capability_missing_from_kernel_is_skipped(run_in):
    """config.md: a capability the kernel does not support is skipped with a warning."""
    last = cap_last_cap()
    if last >= len(CAP_NAMES) - 1:
        pytest.skip(f"this kernel supports every capability up to {CAP_NAMES[-1]} (cap_last_cap={last})")
    missing = "CAP_" + CAP_NAMES[last + 1]
    caps = {s: ["CAP_KILL", missing] for s in ("bounding", "effective", "permitted")}
    p = run_in(sh("cat /proc/self/status"), process={"capabilities": caps})
    assert caps_of(ok(p))["bounding"] == capmask(["CAP_KILL"])
    assert missing in p.stderr, p.stderr


@pytest.mark.runc_deviates("runc 1.1.5 fails create: capset: operation not permitted")
def test_capability_outside_the_runtime_bounding_set_warns(rt, make_bundle):
    """config.md: a capability that cannot be granted (the runtime itself may not hold it: not in
    its bounding set) is logged as a warning, and the container runs without it (SHOULD NOT fail).
    The runtime runs with CAP_SYS_RESOURCE dropped from its bounding set (setpriv)."""
    if not shutil.which("setpriv"):
        pytest.skip("no setpriv (util-linux) to drop a capability from the runtime's bounding set")
    caps = {s: ["CAP_KILL", "CAP_SYS_RESOURCE"] for s in ("bounding", "effective", "permitted")}
    b = make_bundle(sh("cat /proc/self/status"), process={"capabilities": caps})
    rt._remember(b.id)
    p = rt("run", "--bundle", str(b), b.id, prelude='exec setpriv --bounding-set -sys_resource -- "$@"')
    got = caps_of(ok(p))
    assert got["effective"] == got["permitted"] == got["bounding"] == capmask(["CAP_KILL"]), got
    assert "CAP_SYS_RESOURCE" in p.stderr and "warn" in p.stderr.lower(), p.stderr


# ---- noNewPrivileges ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("nnp,want", [(True, "1"), (False, "0")])
def test_no_new_privileges_in_exec(rt, started, nnp, want):
    b = started(process={"noNewPrivileges": nnp})
    out = ok(rexec(rt, b.id, "cat", "/proc/self/status"))
    assert status_fields(out)["NoNewPrivs"] == want


def test_no_new_privs_flag_of_exec(rt, started):
    b = started(process={"noNewPrivileges": False})
    out = ok(rexec(rt, b.id, "cat", "/proc/self/status", extra=["--no-new-privs"]))
    assert status_fields(out)["NoNewPrivs"] == "1"


def test_capabilities_in_exec(rt, started):
    b = started(process={"capabilities": ROOT_CAPS})
    assert_caps(ok(rexec(rt, b.id, "cat", "/proc/self/status")), ROOT_CAPS)


def test_capabilities_in_exec_non_root(rt, started):
    b = started(mutate=non_root())
    out = ok(rexec(rt, b.id, "sh", "-c", "cat /proc/self/status; " + BIND_80))
    assert status_fields(out)["Uid"].split() == ["1000"] * 4
    assert_caps(out, USER_CAPS_AFTER_EXEC)
    assert "BOUND-80" in out


# ---- LSMs: apparmorProfile, selinuxLabel, mountLabel --------------------------------------------------------


def apparmor_enabled():
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled():
    return os.path.exists("/sys/fs/selinux/enforce")


LSM_CASES = [
    # (config edit, LSM, JSON pointer, words one of which the error must contain)
    pytest.param(
        process(apparmorProfile="conformance-profile"),
        "apparmor",
        "/process/apparmorProfile",
        ("apparmor",),
        id="apparmorProfile",
    ),
    pytest.param(
        process(selinuxLabel="system_u:system_r:container_t:s0:c1,c2"),
        "selinux",
        "/process/selinuxLabel",
        ("selinux",),
        id="selinuxLabel",
    ),
    pytest.param(
        lambda c: c["linux"].update(mountLabel="system_u:object_r:container_file_t:s0:c1,c2"),
        "selinux",
        "/linux/mountLabel",
        ("selinux", "mountLabel", "system_u:object_r:container_file_t:s0:c1,c2"),
        id="mountLabel",
    ),
]


def skip_if_lsm_enabled(lsm):
    if lsm == "apparmor" and apparmor_enabled():
        pytest.skip("AppArmor is enabled on this host")
    if lsm == "selinux" and selinux_enabled():
        pytest.skip("SELinux is enabled on this host")


@pytest.mark.parametrize("mutate,lsm,pointer,words", LSM_CASES)
def test_lsm_unavailable_fails_create(rt, make_bundle, mutate, lsm, pointer, words):
    """A config asking for an LSM the host lacks must not give an unconfined container: create fails
    with one clear error naming the module (runc 1.1.5 fails all three, with its own wording), and
    leaves nothing behind."""
    skip_if_lsm_enabled(lsm)
    b = make_bundle(SLEEP, mutate=mutate)
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer=pointer)
    line = one_line(p.stderr)
    assert any(w.lower() in line.lower() for w in words), line


@pytest.mark.parametrize("mutate,lsm,pointer,words", LSM_CASES[:2])
def test_lsm_unavailable_fails_exec(rt, started, tmp_path, mutate, lsm, pointer, words):
    """The same for a process started with `exec --process`: it fails, nothing runs unconfined."""
    skip_if_lsm_enabled(lsm)
    b = started()
    proc = dict(b.config["process"], args=["sh", "-c", "echo RAN"])
    mutate({"process": proc, "linux": {}})
    pj = tmp_path / "process.json"
    pj.write_text(json.dumps(proc))
    p = rexec(rt, b.id, extra=["--process", str(pj)])
    assert p.returncode != 0, "exec ran without the requested LSM confinement"
    assert "RAN" not in p.stdout
    line = one_line(p.stderr)
    assert any(w.lower() in line.lower() for w in words), line


@pytest.mark.parametrize("flag,lsm", [("--apparmor", "apparmor"), ("--process-label", "selinux")])
def test_lsm_exec_flags_unavailable_fail(rt, started, flag, lsm):
    """`exec --apparmor P` / `exec --process-label L` on a host without that LSM: exec fails (runc's
    flags); the process must not run unconfined, the flag must not be ignored."""
    skip_if_lsm_enabled(lsm)
    b = started()
    value = "conformance-profile" if lsm == "apparmor" else "system_u:system_r:container_t:s0:c1,c2"
    p = rexec(rt, b.id, "sh", "-c", "echo RAN", extra=[flag, value])
    assert p.returncode != 0 and "RAN" not in p.stdout, f"exec {flag} ran the process: {p.stdout!r}"
    assert lsm in one_line(p.stderr).lower(), p.stderr
    if rt.is_ocirt:  # the flag that gave the label named, not a field of config.json
        assert f"exec failed: {flag}: " in p.stderr and "config.json" not in p.stderr, p.stderr


# ---- seccomp -------------------------------------------------------------------------------------------------

# Enough for busybox sh and its applets, for the runtime's own last steps after the filter is loaded
# (runc's Go runtime, ocirt's Python) and for both of them before it when noNewPrivileges is false.
# Left out on purpose: mkdir/mkdirat (-> the default action), chmod & co (-> a rule with errnoRet),
# kill (-> rules on its arguments).
SECCOMP_ALLOW = """
accept accept4 access arch_prctl alarm bind brk capget capset chdir chown clock_getres clock_gettime
clock_nanosleep clone clone3 close close_range connect dup dup2 dup3 epoll_create epoll_create1
epoll_ctl epoll_pwait epoll_wait eventfd2 execve execveat exit exit_group faccessat faccessat2
fadvise64 fchdir fchown fchownat fcntl fdatasync flock fork fstat fstatfs fsync ftruncate futex
getcwd getdents getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresuid getrlimit getrusage getsid getsockname
getsockopt gettid gettimeofday getuid getxattr ioctl lgetxattr link linkat listen lseek lstat
madvise membarrier mmap mprotect mremap munmap nanosleep newfstatat open openat openat2 pause pipe
pipe2 poll ppoll prctl pread64 prlimit64 pselect6 pwrite64 read readlink readlinkat readv recvfrom
recvmsg rename renameat renameat2 rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait sched_getaffinity sched_yield select
sendfile sendmsg sendto set_robust_list set_tid_address setgid setgroups setitimer setpgid
setpriority setresgid setresuid setreuid setsid setuid sigaltstack socket socketpair stat statfs
statx symlink symlinkat sysinfo tgkill time tkill umask uname unlink unlinkat utime utimensat
utimes vfork wait4 waitid write writev
""".split()  # noqa: SIM905 - a table, not a list literal
EXDEV, EDOM, EREMOTEIO = 18, 33, 121
SIGUSR1 = 10


def seccomp_profile(default_errno=None, extra_rules=()):
    prof = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": SECCOMP_ALLOW, "action": "SCMP_ACT_ALLOW"},
            {"names": ["chmod", "fchmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EXDEV},
            # kill(pid, 0) is allowed, kill(pid, SIGUSR1) fails with EDOM, any other signal: default action
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": EDOM,
                "args": [{"index": 1, "value": SIGUSR1, "op": "SCMP_CMP_EQ"}],
            },
            *extra_rules,
        ],
    }
    if default_errno is not None:
        prof["defaultErrnoRet"] = default_errno
    return prof


def seccomp(profile):
    def mutate(c):
        c["linux"]["seccomp"] = profile

    return mutate


# Each probe prints one line: the error of the blocked call (busybox prints strerror) or OK.
SECCOMP_PROBE = (
    "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
    "mkdir /tmp/d 2>&1 && echo mkdir-OK; "
    "touch /tmp/f; chmod 600 /tmp/f 2>&1 && echo chmod-OK; "
    "kill -0 $$ 2>&1 && echo kill0-OK; "
    "kill -USR1 $$ 2>&1 && echo killusr1-OK; "
    "kill -CONT $$ 2>&1 && echo killcont-OK; "
    "echo end"
)


def check_probe(out, default_errno_text="Operation not permitted"):
    st = status_fields(out)
    assert st.get("Seccomp") == "2", f"no seccomp filter in the process: {out!r}"
    lines = [ln for ln in out.splitlines() if not ln.startswith(("Seccomp", "NoNewPrivs"))]
    mkdir, chmod, kill0, killusr1, killcont, end = lines
    assert "mkdir-OK" not in mkdir and default_errno_text in mkdir, mkdir  # default action
    assert "Invalid cross-device link" in chmod, chmod  # errnoRet EXDEV
    assert kill0 == "kill0-OK", kill0  # args: allowed
    assert "Numerical argument out of domain" in killusr1, killusr1  # args: errnoRet EDOM
    assert default_errno_text in killcont, killcont  # args: no match -> default
    assert end == "end"


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_seccomp_profile_enforced(run_in, nnp):
    """defaultAction ERRNO (EPERM) with an allow list, a rule with errnoRet, rules on arguments.
    Without noNewPrivileges the runtime loads the filter while it still has CAP_SYS_ADMIN."""
    out = ok(run_in(sh(SECCOMP_PROBE), mutate=seccomp(seccomp_profile()), process={"noNewPrivileges": nnp}))
    check_probe(out)
    assert status_fields(out)["NoNewPrivs"] == ("1" if nnp else "0")


def test_seccomp_default_errno_ret(run_in):
    out = ok(run_in(sh(SECCOMP_PROBE), mutate=seccomp(seccomp_profile(default_errno=EREMOTEIO))))
    check_probe(out, default_errno_text="Remote I/O error")


def test_seccomp_kill_process_action(run_in):
    """SCMP_ACT_KILL_PROCESS: the process making the call dies of SIGSYS (exit status 128+31)."""
    rule = {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}
    out = ok(
        run_in(
            sh("echo before; /bin/busybox sync; echo status=$?"),
            mutate=seccomp(seccomp_profile(extra_rules=[rule])),
        )
    )
    assert out.split() == ["before", "status=159"]


# A syscall the profile does not name: the default action when the profile knows newer ones, ENOSYS
# when it is newer than all of them (a profile made for an older kernel), so that libc falls back
# (glibc goes from clone3 to clone only on ENOSYS). Numbers are x86_64's: process_mrelease 448 and
# futex_waitv 449 are newer than every name of SECCOMP_ALLOW (faccessat2 439 the newest); mkdir 83.
SYSCALL_PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long nr = strtol(argv[i], NULL, 10);
        errno = 0;
        long r = syscall(nr, -1L, -1L, 0L, 0L);
        printf("%ld:%d\n", nr, r < 0 ? errno : 0);
    }
    return 0;
}
"""
ENOSYS = 38


@pytest.fixture
def syscall_probe(tmp_path):
    """A static binary that makes raw syscalls (number: errno per line); copied into a rootfs."""
    if os.uname().machine != "x86_64":
        pytest.skip("the probe's syscall numbers are x86_64's")
    src = tmp_path / "probe.c"
    src.write_text(SYSCALL_PROBE_C)
    out = tmp_path / "probe"
    try:
        subprocess.run(
            ["cc", "-static", "-O2", "-o", str(out), str(src)], check=True, capture_output=True, timeout=120
        )
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"no static C toolchain for the probe: {e}")
    return str(out)


def _probe_errnos(rt, make_bundle, probe, profile, numbers):
    b = make_bundle(["/probe", *map(str, numbers)], rootfs_copy=True, mutate=seccomp(profile))
    shutil.copy(probe, os.path.join(b.rootfs, "probe"))
    out = ok(rt.run(b.id, b))
    return dict(tuple(map(int, line.split(":"))) for line in out.split())


def test_seccomp_syscalls_newer_than_the_profile_are_enosys(rt, make_bundle, syscall_probe):
    got = _probe_errnos(rt, make_bundle, syscall_probe, seccomp_profile(), [83, 448, 449, 1000])
    assert got == {83: errno.EPERM, 448: ENOSYS, 449: ENOSYS, 1000: ENOSYS}


def test_seccomp_enosys_keeps_explicit_rules(rt, make_bundle, syscall_probe):
    rule = {"names": ["process_mrelease"], "action": "SCMP_ACT_ERRNO", "errnoRet": EXDEV}
    got = _probe_errnos(rt, make_bundle, syscall_probe, seccomp_profile(extra_rules=[rule]), [83, 448, 449])
    assert got == {83: errno.EPERM, 448: EXDEV, 449: ENOSYS}


def test_seccomp_non_root_user(run_in):
    """The filter also holds for a process that switched to another uid (loaded before or after it)."""
    out = ok(run_in(sh(SECCOMP_PROBE), mutate=lambda c: (seccomp(seccomp_profile())(c), non_root()(c))))
    check_probe(out)


def test_seccomp_in_exec(rt, started):
    """`exec` gets the container's filter: Seccomp: 2 and the same blocked/allowed calls."""
    b = started(mutate=seccomp(seccomp_profile()))
    check_probe(ok(rexec(rt, b.id, "sh", "-c", SECCOMP_PROBE)))


def test_seccomp_in_exec_no_nnp(rt, started):
    b = started(mutate=seccomp(seccomp_profile(default_errno=EREMOTEIO)), process={"noNewPrivileges": False})
    out = ok(rexec(rt, b.id, "sh", "-c", SECCOMP_PROBE))
    check_probe(out, default_errno_text="Remote I/O error")
    assert status_fields(out)["NoNewPrivs"] == "0"


def test_exec_seccomp_is_fixed_at_create(rt, started):
    """`exec` gets the filter the container was created with, whatever the bundle's config.json says
    later: a config.json rewritten after create without linux.seccomp must not give an unconfined
    process. (runc takes exec's *process* fields from config.json at exec time, but the seccomp
    profile from the container's saved config.)"""
    b = started(mutate=seccomp(seccomp_profile()))
    loose = json.loads(json.dumps(b.config))
    loose["linux"].pop("seccomp")
    with open(os.path.join(b.path, "config.json"), "w") as f:
        json.dump(loose, f)
    check_probe(ok(rexec(rt, b.id, "sh", "-c", SECCOMP_PROBE)))


def test_exec_blocked_call_in_long_running_process(rt, started, tmp_path):
    """A detached `exec` process is confined too (checked from the host: /proc/PID/status)."""
    b = started(mutate=seccomp(seccomp_profile()), process={"capabilities": ROOT_CAPS})
    pid_file = tmp_path / "exec.pid"
    p = rexec(rt, b.id, "sleep", "1000", extra=["--detach", "--pid-file", str(pid_file)])
    assert p.returncode == 0, p.stderr
    wait_for(pid_file.exists, what="the exec pid file")
    pid = int(pid_file.read_text())
    with open(f"/proc/{pid}/status") as f:
        st = f.read()
    assert status_fields(st)["Seccomp"] == "2"
    assert status_fields(st)["NoNewPrivs"] == "1"
    assert_caps(st, ROOT_CAPS)


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_seccomp_notify_hands_the_listener_its_fd(run_in, tmp_path, nnp):
    """SCMP_ACT_NOTIFY (config-linux.md, listenerPath): the container's process runs, and the
    listener gets one message, the container process state with "seccompFd" in `fds`, and the
    notification fd beside it (SCM_RIGHTS). The busybox rootfs has no Python of its own: a
    runtime whose init loads code for this once it is in the container's root fails here."""
    import socket
    import threading

    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(30)
    got = {}

    def agent():
        try:
            conn, _ = server.accept()
        except OSError as e:
            got["error"] = e
            return
        with conn:
            data, ancdata, _flags, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
            fds = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += [
                        int.from_bytes(payload[i : i + 4], "little") for i in range(0, len(payload) - 3, 4)
                    ]
            for fd in fds:
                os.close(fd)
            got["data"], got["fds"] = data, fds

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": path,
        "listenerMetadata": "conformance",
        "syscalls": [{"names": ["swapon"], "action": "SCMP_ACT_NOTIFY"}],
    }
    try:
        p = run_in(["true"], mutate=seccomp(profile), process={"noNewPrivileges": nnp})
        thread.join(30)
    finally:
        server.close()
    assert p.returncode == 0, p.stderr
    assert "error" not in got, got
    assert len(got.get("fds", ())) == 1, got
    message = json.loads(got["data"])
    assert message["fds"] == ["seccompFd"], message
    assert message["metadata"] == "conformance", message
    assert message["state"]["status"] in ("creating", "created"), message
