"""`ocirt plan` lists what `ocirt create` does: a real create of a rich bundle, under `strace -f`,
makes exactly the operations of the kinds below that the plan of the same bundle lists (every
planned one is in the trace, in order per process, and every traced one is in the plan).

Compared: mount, umount2, pivot_root, unshare, setns, mknod (devices), sethostname,
setdomainname, mkdir and file writes under /sys/fs/cgroup (and /proc/sys: sysctl), uid_map and
gid_map writes, the seccomp filter load, and the hooks run; and in stage 1 and the init (told
apart in the trace by their unshare and pivot_root), prctl, capset, setrlimit, setresuid,
setresgid, setgroups, the session keyring, umask and chdir (without a user namespace there is
no stage 1: create forks the init itself). The targets of the init's mounts are
/proc/self/fd/N links in the trace, so a mount is compared by source (non-bind), type and flags.
"""

import json
import os
import re
import resource
import shutil
import subprocess
import time
import uuid

import pytest
from cli_helpers import OCIRT, REPO, make_bundle

from ocirt import capabilities
from ocirt import kernel as k

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed"),
]

TRACED = (
    "mount,umount2,pivot_root,unshare,setns,mknod,mknodat,sethostname,setdomainname,"
    "mkdir,mkdirat,write,seccomp,execve,prctl,capset,prlimit64,setrlimit,setresuid,"
    "setresgid,setgroups,keyctl,umask,chdir"
)
CHILD_STAGES = {"stage 1: namespaces": "stage1", "init: namespaces": "init", "init: setup": "init"}
NAMES = {
    **{n: v for n, v in vars(k).items() if n.startswith("PR_") and isinstance(v, int)},
    **capabilities.NUMBERS,
    "SUID_DUMP_DISABLE": 0,
    "SUID_DUMP_USER": 1,
    **{n: getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")},
}
MS = {n: v for n, v in vars(k).items() if n.startswith("MS_") and isinstance(v, int)}
MS["MS_MGC_VAL"] = 0xC0ED0000  # strace names the old magic when it is set (never by ocirt)
CLONE = {n: v for n, v in vars(k).items() if n.startswith("CLONE_NEW") and isinstance(v, int)}


def rich_config(bundle: str, cid: str, tmp_path, userns: bool = False) -> dict:
    """runc's default config with bind and tmpfs mounts, a device, a cgroup namespace, resources,
    sysctl, seccomp and hooks of every create-time kind (and one startContainer, which create
    does not run)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text("x")
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["hostname"] = "pvc"
    config["domainname"] = "pvc.example"
    config["mounts"] += [
        {
            "destination": "/mnt/shared",
            "type": "bind",
            "source": str(shared),
            "options": ["rbind", "ro", "nosuid"],
        },
        {
            "destination": "/mnt/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nodev", "noexec", "size=1m", "mode=755"],
        },
    ]
    linux = config["linux"]
    linux["namespaces"].append({"type": "cgroup"})
    linux["cgroupsPath"] = f"/ocirt-test-pvc-{cid}"
    # (in a user namespace, a device is the host's bound: one the host has)
    linux["devices"] = [
        {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o640, "uid": 0, "gid": 0}
    ]
    linux["resources"] = {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 64},
    }
    linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}],
    }
    true = shutil.which("true")
    config["hooks"] = {
        name: [{"path": true, "args": ["true", name]}]
        for name in ("prestart", "createRuntime", "createContainer", "startContainer")
    }
    if userns:  # root mapped to itself: the rootfs needs no chown
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    with open(path, "w") as f:
        json.dump(config, f)
    return config


# -- the plan, as operations ------------------------------------------------------------------------


def planned(steps: list, hooks: dict) -> dict:
    """{kind: [operation, ...]} in order, from `ocirt plan --format json` (its "init: start" is
    what `ocirt start` makes happen, not create)."""
    out = {}
    for s in steps:
        if s["stage"] == "init: start":
            continue
        for kind, op in plan_ops(s["op"], s["args"]):
            out.setdefault(kind, []).append(op)
        who = CHILD_STAGES.get(s["stage"])
        for kind, op in plan_attr_ops(s["op"], s["args"]) if who else ():
            out.setdefault(f"{who} {kind}", []).append(op)
    return out


def plan_attr_ops(op: str, a: list):
    if op == "prctl":
        yield "prctl", strip_zeros(a)
    elif op == "capset":
        yield "capset", tuple(a)
    elif op == "setrlimit":
        yield "setrlimit", tuple(rlim(v) for v in a)
    elif op in ("setresuid", "setresgid", "umask", "chdir"):
        yield op, a[0]
    elif op == "setgroups":
        yield "setgroups", tuple(a[0])
    elif op == "join_session_keyring":
        yield "keyring", a[0]


def strip_zeros(args) -> tuple:
    """prctl's unused trailing arguments (0) left out."""
    args = list(args)
    while len(args) > 1 and args[-1] == 0:
        args.pop()
    return tuple(args)


def rlim(v: int) -> int:
    return -1 if v in (resource.RLIM_INFINITY, 2**64 - 1) else v


def plan_ops(op: str, a: list):
    if op == "mount":
        source, _, fstype, flags, _ = a
        yield "mount", mount_key(source, fstype, flags)
    elif op == "umount":
        yield "umount", a[1]
    elif op in ("pivot_root", "sethostname", "setdomainname"):
        yield op, tuple(a) if op == "pivot_root" else a[0]
    elif op == "unshare":
        yield "unshare", a[0]
    elif op == "setns":
        yield "setns", a[1]
    elif op == "mknod":
        yield "mknod", (a[1], a[2], a[3])
    elif op == "mkdir" and a[0].startswith("/sys/fs/cgroup/"):
        yield "cgroup_mkdir", a[0]
    elif op == "write_file":
        path, value = a[0], str(a[1]).strip()
        if path.startswith("/sys/fs/cgroup/"):
            yield "cgroup_write", (path, "<pid>" if path.endswith("cgroup.procs") else value)
        elif path.startswith("/proc/sys/") or re.search(r"/(uid|gid)_map$|/setgroups$", path):
            yield "proc_write", (re.sub(r"^/proc/<[^>]+>/", "/proc/<pid>/", path), value)
    elif op == "move_self":  # a child into a v1 hierarchy by itself: 0 into its `tasks`
        yield "cgroup_write", (a[0], "0")
    elif op == "seccomp_load":
        yield "seccomp_load", 1
    elif op == "hook":
        yield "hook", (a[1], *a[2])


def mount_key(source, fstype, flags: int):
    """What a mount is compared by: the source only where it is not a path (a bind's may be an
    fd link in the trace), the type, the flags."""
    keep = source if source and not source.startswith("/") else None
    return (keep, fstype or None, flags)


# -- the trace, as operations -----------------------------------------------------------------------

LINE = re.compile(r"^(\d+) +(\w+)\((.*)\) += (-?\w+)")


def traced(log: str, hook_paths: set) -> dict:
    """{kind: [operation, ...]} in order, from `strace -f -y -o log` of create (successful calls)."""
    calls = [m.groups() for m in map(LINE.match, joined(log)) if m]
    calls = [c for c in calls if not c[3].startswith("-")]  # failed: EEXIST of a mkdir, probes
    # stage 1 is the first child to unshare (or setns), the init the one that pivots; create
    # itself (the first process traced) makes the init's pid namespace where it forks the init
    # (one fork: stages.one_fork), and there is no stage 1
    runtime = calls[0][0]
    stage1 = next(pid for pid, name, _, _ in calls if name in ("unshare", "setns") and pid != runtime)
    init = next(pid for pid, name, _, _ in calls if name == "pivot_root")
    roles = {stage1: "stage1", init: "init"} if stage1 != init else {init: "init"}
    out = {}
    for pid, name, args, _ in calls:
        if name == "write" and "cgroup.procs>" in args and cstrings(args)[:1] not in ([stage1], [init]):
            continue  # ocirt/attach_window.py: create moving itself to where it is (not a plan step)
        for kind, op in trace_ops(name, args, hook_paths):
            out.setdefault(kind, []).append(op)
        for kind, op in trace_attr_ops(name, args) if pid in roles else ():
            out.setdefault(f"{roles[pid]} {kind}", []).append(op)
    return out


def named(text: str) -> int:
    """A strace argument: a number, a name, or names/shifts joined with |."""
    value = 0
    for part in text.split("|"):
        part = part.strip()
        if "<<" in part:
            one, _, name = part.partition("<<")
            value |= int(one, 0) << NAMES.get(name, None if not name.isdigit() else int(name))
        elif part in NAMES:
            value |= NAMES[part]
        else:
            value |= int(part, 0)
    return value


def limit(text: str) -> int:
    if text == "RLIM64_INFINITY":
        return -1
    value = 1
    for factor in text.split("*"):
        value *= int(factor, 0)
    return value


def trace_attr_ops(name: str, args: str):
    parts = split_args(args)
    if name == "prctl":
        yield "prctl", strip_zeros(named(p) for p in parts)
    elif name == "capset":
        sets = dict(re.findall(r"(effective|permitted|inheritable)=([^,}]+)", parts[1]))
        yield "capset", tuple(named(sets[n]) for n in ("effective", "permitted", "inheritable"))
    elif name in ("prlimit64", "setrlimit"):
        new = parts[2] if name == "prlimit64" else parts[1]
        if new != "NULL":
            cur, hard = re.findall(r"rlim_(?:cur|max)=([^,}]+)", new)
            yield "setrlimit", (NAMES[parts[1 if name == "prlimit64" else 0]], limit(cur), limit(hard))
    elif name in ("setresuid", "setresgid"):
        yield name, int(parts[0])
    elif name == "umask":
        yield "umask", int(parts[0], 8)
    elif name == "chdir":
        yield "chdir", cstrings(args)[0]
    elif name == "setgroups":
        yield "setgroups", tuple(int(g) for g in re.findall(r"\d+", parts[1]))
    elif name == "keyctl" and parts[0] == "KEYCTL_JOIN_SESSION_KEYRING":
        yield "keyring", cstrings(args)[0]


def joined(log: str):
    """The lines of a `strace -f` log, a call interrupted by another process's ("<unfinished
    ...>" ... "<... name resumed>") put back together, at the place where it ended."""
    pending = {}
    with open(log) as f:
        for line in f:
            line = line.rstrip("\n")
            pid = line.split(" ", 1)[0]
            if line.endswith("<unfinished ...>"):
                pending[pid] = line[: -len("<unfinished ...>")].rstrip()
                continue
            m = re.match(r"^(\d+) +<\.\.\. \w+ resumed>(.*)$", line)
            if m:
                line = pending.pop(pid, f"{pid} ?(") + m.group(2)
            yield line


def cstrings(args: str) -> list[str]:
    return [bytes(s, "ascii").decode("unicode_escape") for s in re.findall(r'"((?:[^"\\]|\\.)*)"', args)]


def flag_value(text: str, table: dict) -> int:
    value = 0
    for part in text.split("|"):
        part = part.strip()
        value |= table[part] if part in table else int(part, 0)
    return value


def trace_ops(name: str, args: str, hook_paths: set):
    if name == "mount":
        parts = split_args(args)
        source = None if parts[0] == "NULL" else cstrings(parts[0])[0]
        fstype = None if parts[2] == "NULL" else cstrings(parts[2])[0]
        yield "mount", mount_key(source, fstype, flag_value(parts[3], MS))
    elif name == "umount2":
        yield "umount", k.MNT_DETACH if "MNT_DETACH" in split_args(args)[1] else int(split_args(args)[1], 0)
    elif name == "pivot_root":
        yield "pivot_root", tuple(cstrings(args))
    elif name in ("sethostname", "setdomainname"):
        yield name, cstrings(args)[0]
    elif name == "unshare":
        yield "unshare", flag_value(args, CLONE)
    elif name == "setns":
        yield "setns", flag_value(split_args(args)[1], CLONE)
    elif name in ("mknod", "mknodat"):
        mode_arg = next(p for p in split_args(args) if p.startswith("S_IF"))
        if mode_arg.startswith("S_IFIFO"):
            return  # exec.fifo (listed as mkfifo)
        kind, _, perm = mode_arg.partition("|")
        dev = re.search(r"makedev\((\w+), (\w+)\)", args)
        mode = {"S_IFCHR": 0o020000, "S_IFBLK": 0o060000}[kind] | int(perm, 8)
        yield "mknod", (mode, int(dev.group(1), 0), int(dev.group(2), 0))
    elif name in ("mkdir", "mkdirat"):
        path = cstrings(args)[0]
        if path.startswith("/sys/fs/cgroup/"):
            yield "cgroup_mkdir", path
    elif name == "write":
        fd_path = re.match(r"\d+<([^>]*)>", args)
        if not fd_path:
            return
        path, value = fd_path.group(1), cstrings(args)[0].strip()
        if path.startswith("/sys/fs/cgroup/"):
            yield "cgroup_write", (path, "<pid>" if path.endswith("cgroup.procs") else value)
        elif path.startswith("/proc/sys/") or re.search(r"/(uid|gid)_map$|/setgroups$", path):
            yield "proc_write", (re.sub(r"/proc/\d+/", "/proc/<pid>/", path), value)
    elif name == "seccomp" and args.startswith("SECCOMP_SET_MODE_FILTER"):
        yield "seccomp_load", 1
    elif name == "execve":
        strings = cstrings(args.split("], ")[0])
        if strings and strings[0] in hook_paths:
            yield "hook", tuple(strings)


def split_args(args: str) -> list[str]:
    """Top-level comma-separated arguments of a strace line (strings and brackets kept whole)."""
    out, cur, depth, quoted, escaped = [], "", 0, False, False
    for ch in args:
        if quoted:
            cur += ch
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


# -- the test -------------------------------------------------------------------------------------


def remove_cgroup(name: str) -> None:
    for top in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", top, name)
        if os.path.isdir(d):
            try:
                os.rmdir(d)
            except OSError:
                pass
    try:
        os.rmdir(os.path.join("/sys/fs/cgroup", name))
    except OSError:
        pass


@pytest.mark.parametrize("userns", [False, True], ids=["host-userns", "new-userns"])
def test_plan_is_what_create_does(tmp_path, busybox_rootfs, userns):
    cid = f"pvc-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["true"])
    config = rich_config(bundle, cid, tmp_path, userns)
    root = str(tmp_path / "root")
    hook_paths = {h["path"] for hs in config["hooks"].values() for h in hs}
    base = OCIRT + ["--root", root]

    plan = subprocess.run(
        base + ["plan", "--format", "json", "--bundle", bundle, cid],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plan.returncode == 0, plan.stderr
    want = planned(json.loads(plan.stdout), config["hooks"])

    log, pid_file = str(tmp_path / "strace.log"), str(tmp_path / "pid")
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-y", "-s", "4096", "-o", log, "-e", f"trace={TRACED}"]
        + base
        + ["create", "--bundle", bundle, "--pid-file", pid_file, cid],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # strace ends when the last traced process does: the init waits on exec.fifo until
        # `delete` kills it, once create has written the pid file (its last step)
        deadline = time.monotonic() + 60
        while not os.path.exists(pid_file) and tracer.poll() is None:
            assert time.monotonic() < deadline, "create did not finish"
            time.sleep(0.02)
        assert os.path.exists(pid_file), tracer.communicate()[1].decode()
    finally:
        subprocess.run(base + ["delete", "--force", cid], cwd=REPO, capture_output=True, timeout=60)
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
        remove_cgroup(f"ocirt-test-pvc-{cid}")
    got = traced(log, hook_paths)

    rich = (
        "mount",
        "umount",
        "pivot_root",
        "unshare",
        "mknod",
        "sethostname",
        "setdomainname",
        "cgroup_mkdir",
        "cgroup_write",
        "proc_write",
        "seccomp_load",
        "hook",
    )
    assert [kind for kind in rich if not want.get(kind) and not (userns and kind == "mknod")] == []
    if userns:  # no mknod there: devices are bound from the host; the parent maps the ids
        assert ("/proc/<pid>/uid_map", "0 0 65536") in want["proc_write"]
    assert len(want["hook"]) == 3  # prestart, createRuntime, createContainer
    assert want["init capset"] and want["init setrlimit"] and want["init keyring"]
    diffs = [
        describe(kind, want.get(kind, []), got.get(kind, []))
        for kind in sorted(set(want) | set(got))
        if want.get(kind, []) != got.get(kind, [])
    ]
    assert not diffs, "\n".join(diffs)


def describe(kind: str, want: list, got: list) -> str:
    lines = [f"{kind}: planned {len(want)}, traced {len(got)}"]
    lines += [f"  planned, not traced: {op}" for op in want if op not in got]
    lines += [f"  traced, not planned: {op}" for op in got if op not in want]
    if len(lines) == 1:
        lines += [f"  order: planned {want}", f"  order: traced  {got}"]
    return "\n".join(lines)
