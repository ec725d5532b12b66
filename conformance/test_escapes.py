"""Container escapes: each test plays an attack from inside the container and FAILS if it works.

1. The runtime's executable overwritten through /proc/PID/exe (CVE-2019-5736 class), at `start`
   and at `exec`: the container's /bin/sh is a symlink to /proc/self/exe, so the runtime executes
   *itself* as the container's process, and the container's dynamic loader (an attacker program)
   grabs that executable; or a container process watches for the runtime's processes entering its
   pid namespace and opens their /proc/PID/exe. These tests run a private copy of the runtime (for
   ocirt: a copy of its venv with a copy of the interpreter), so a successful attack only damages
   the copy; the host's files are hashed before and after too, and the attack writes only into
   files under the copy's directory.
2. File descriptors and cwd (CVE-2024-21626 class): no directory outside the container is reachable
   through the fds or the cwd of the container's processes, runtime helpers included, for the init
   (created and running) and for `exec`; process.cwd / `exec --cwd` of /proc/self/fd/N and the like.
3. Symlinks in the rootfs redirecting /proc, /sys, /dev, mount destinations, masked and read-only
   paths (CVE-2019-16884, CVE-2019-19921, CVE-2021-30465 classes): nothing is created or mounted
   outside the rootfs.
4. /proc and /sys writes blocked by maskedPaths/readonlyPaths and the read-only mounts.
5. The device cgroup: device nodes not in the allow list cannot be opened.
"""

import hashlib
import os
import shlex
import shutil
import stat
import struct
import tempfile

import pytest
from runtime import ok, sh, wait_for

SLEEP = ["sleep", "1000"]


def rexec(rt, cid, *args, extra=(), **kw):
    return rt("exec", *extra, cid, *args, **kw)


def writable_rootfs(c):
    c["root"]["readonly"] = False


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# ---- 1. the runtime's executable ----------------------------------------------------------------------


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def elf_interpreter(path):
    """PT_INTERP of an ELF64 little-endian file (the dynamic loader it asks for), or None."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return None
        (phoff,) = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack("<IIQQQQ", f.read(40))
            if p_type == 3:  # PT_INTERP
                f.seek(p_offset)
                return f.read(p_filesz).split(b"\0")[0].decode()
    return None


class RuntimeCopy:
    """A private copy of the runtime: `command` runs it; `copies` are the files an attack would
    overwrite (its executable, and for a script its interpreter); `originals` the host's files."""

    def __init__(self, command, copies, originals, binary, prefix):
        self.command = command
        self.copies = copies
        self.originals = originals
        self.binary = binary  # the ELF file the runtime's processes execute
        self.prefix = prefix  # every copy is under this directory (ends with "/")

    def hashes(self):
        return {p: sha256(p) for p in self.copies + self.originals}


def copy_runtime(command, dest):
    argv = shlex.split(command)
    path = shutil.which(argv[0])
    if not path:
        pytest.skip(f"runtime {argv[0]!r} not found")
    os.makedirs(dest)
    prefix = dest.rstrip("/") + "/"
    with open(path, "rb") as f:
        is_script = f.read(2) == b"#!"
    if not is_script:
        new = os.path.join(dest, os.path.basename(path))
        shutil.copy2(path, new)
        return RuntimeCopy(shlex.join([new] + argv[1:]), [new], [os.path.realpath(path)], new, prefix)
    with open(path) as f:
        first, rest = f.readline(), f.read()
    interp, *interp_args = first[2:].split()
    if os.path.basename(interp) in ("sh", "dash", "bash") and '-I -S "$0"' in rest:
        # ocirt's launcher (bin/ocirt): its shell line execs the python3 beside it with -I -S,
        # so that interpreter is what the runtime's processes execute
        interp, interp_args = os.path.join(os.path.dirname(os.path.realpath(path)), "python3"), ["-IS"]
    if os.path.basename(interp) == "env":
        pytest.skip(f"{path}: cannot copy a runtime started through {interp}")
    real_interp = os.path.realpath(interp)
    venv = os.path.dirname(os.path.dirname(interp))
    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        # A venv whose bin/ is a copy, with a real copy of the interpreter instead of the venv's
        # symlink to the host's; pyvenv.cfg finds the same standard library, and lib/ (the
        # installed packages, only read) is the original's.
        vcopy = os.path.join(dest, "venv")
        os.makedirs(vcopy)
        for name in os.listdir(venv):
            src = os.path.join(venv, name)
            if name == "bin":
                shutil.copytree(src, os.path.join(vcopy, name), symlinks=True)
            elif name == "pyvenv.cfg":
                shutil.copy2(src, os.path.join(vcopy, name))
            elif not os.path.islink(src):
                os.symlink(src, os.path.join(vcopy, name))
            else:
                os.symlink(os.readlink(src), os.path.join(vcopy, name))
        new_interp = os.path.join(vcopy, os.path.relpath(interp, venv))
        bindir = os.path.dirname(new_interp)
        for name in os.listdir(bindir):
            p = os.path.join(bindir, name)
            if os.path.islink(p) and os.path.isabs(os.readlink(p)) and os.path.realpath(p) == real_interp:
                os.unlink(p)
                os.symlink(os.path.basename(new_interp), p)
        if os.path.islink(new_interp):
            os.unlink(new_interp)
        shutil.copy2(real_interp, new_interp)
        inside = os.path.realpath(path).startswith(os.path.realpath(venv) + "/")
        script = (
            os.path.join(vcopy, os.path.relpath(path, venv))
            if inside
            else os.path.join(dest, os.path.basename(path))
        )
    else:
        new_interp = os.path.join(dest, os.path.basename(real_interp))
        shutil.copy2(real_interp, new_interp)
        script = os.path.join(dest, os.path.basename(path))
    with open(script, "w") as f:
        f.write("#!" + " ".join([new_interp] + interp_args) + "\n" + rest)
    os.chmod(script, 0o755)
    return RuntimeCopy(
        shlex.join([script] + argv[1:]),
        [new_interp, script],
        [real_interp, os.path.realpath(path)],
        new_interp,
        prefix,
    )


@pytest.fixture
def runtime_copy(rt, make_runtime, tmp_path):
    """(copy, rtc): a RuntimeCopy and a Runtime running it (same --root as `rt`, which also cleans up)."""
    copy = copy_runtime(rt.command, str(tmp_path / "runtime-copy"))
    rtc = make_runtime(root=rt.root, command=copy.command)
    before = copy.hashes()
    yield copy, rtc
    # The containers go with the host's runtime (the copy may be damaged), then the copy goes
    # (a venv is big; pytest keeps the last temp dirs).
    for cid in rtc.ids:
        rt._remember(cid)
    failures = rt.cleanup()
    rtc.ids.clear()
    # Whatever the test asserted: the host's own files must never change.
    changed = [p for p in copy.originals if sha256(p) != before[p]]
    shutil.rmtree(copy.prefix, ignore_errors=True)
    assert not changed, f"HOST FILES CHANGED: {changed}"
    assert not failures, f"delete --force failed: {failures}"


def fake_loader(script):
    """A static x86-64 ELF program, placed in the rootfs as the dynamic loader the runtime's
    executable asks for: it opens /proc/self/exe (the runtime's executable) as fd 3 and execs
    `/bin/busybox sh SCRIPT` (fd 3 survives exec)."""
    base = 0x20000000
    code_off = 64 + 56
    strings = [b"/proc/self/exe\0", b"/bin/busybox\0", b"sh\0", script.encode() + b"\0"]
    q = lambda v: struct.pack("<Q", v)
    d = lambda v: struct.pack("<I", v)

    def code(exe, busybox, argv, envp):
        return (
            b"\x48\xbf"
            + q(exe)
            + b"\x31\xf6"
            + b"\x31\xd2"
            + b"\xb8"
            + d(2)
            + b"\x0f\x05"  # open(exe, O_RDONLY)
            + b"\x89\xc7"
            + b"\xbe"
            + d(3)
            + b"\xb8"
            + d(33)
            + b"\x0f\x05"  # dup2(fd, 3)
            + b"\x48\xbf"
            + q(busybox)
            + b"\x48\xbe"
            + q(argv)
            + b"\x48\xba"
            + q(envp)
            + b"\xb8"
            + d(59)
            + b"\x0f\x05"  # execve
            + b"\xbf"
            + d(127)
            + b"\xb8"
            + d(60)
            + b"\x0f\x05"
        )  # exit(127)

    code_len = len(code(0, 0, 0, 0))
    argv_off = code_off + code_len + (-(code_off + code_len)) % 8
    envp_off = argv_off + 24
    addrs, off = [], envp_off + 8
    for s in strings:
        addrs.append(base + off)
        off += len(s)
    exe, busybox, arg0, arg1 = addrs
    body = code(exe, busybox, base + argv_off, base + envp_off)
    body += b"\0" * (argv_off - code_off - len(body))
    body += q(arg0) + q(arg1) + q(0) + q(0) + b"".join(strings)
    size = code_off + len(body)
    ehdr = (
        b"\x7fELF"
        + bytes([2, 1, 1, 0])
        + bytes(8)
        + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + code_off, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + body


# Shell (busybox) that tries to write into the file open as fd 3 once nothing executes it any more:
# ETXTBSY while the runtime still runs it, then the write goes through unless the file is protected
# (read-only mount, sealed memfd, not writable). Writes only into the runtime copy (prefix).
WRITE_FD3 = r"""
t=$(readlink /proc/self/fd/3)
i=0
while [ $i -lt 300 ]; do
  if ( exec 4>>/proc/self/fd/3 ) 2>/tmp/attack.err; then
    say "opened-for-write $t"
    case "$t" in "$prefix"*) ( printf '\n#PWNED-BY-CONTAINER\n' >>/proc/self/fd/3 ) && say "wrote $t" ;; esac
    break
  fi
  grep -q busy /tmp/attack.err || { say "refused: $(cat /tmp/attack.err)"; break; }
  i=$((i+1)); sleep 0.05
done
"""

ATTACK_HEAD = r"""
PATH=/bin
prefix=$(cat /attack.prefix)
say() { echo "$*" >>/attack.log; }
"""

EXE_ATTACK = (
    ATTACK_HEAD
    + r"""
if [ ! -e /proc/self/fd/3 ]; then say "no fd 3"; say done; exit 0; fi
say "fd3 $(readlink /proc/self/fd/3)"
"""
    + WRITE_FD3
    + "say done\n"
)


def arm_exe_attack(rootfs, copy):
    """/bin/sh -> /proc/self/exe, and the dynamic loader of the runtime's executable replaced."""
    os.unlink(os.path.join(rootfs, "bin", "sh"))
    os.symlink("/proc/self/exe", os.path.join(rootfs, "bin", "sh"))
    loader = elf_interpreter(copy.binary)
    if loader:
        dest = os.path.join(rootfs, loader.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(fake_loader("/attack.sh"))
        os.chmod(dest, 0o755)
    with open(os.path.join(rootfs, "attack.sh"), "w") as f:
        f.write(EXE_ATTACK)
    with open(os.path.join(rootfs, "attack.prefix"), "w") as f:
        f.write(copy.prefix + "\n")


def check_not_overwritten(copy, before, log):
    print(f"attack log:\n{log}")  # shown with -rP
    after = copy.hashes()
    changed = [p for p in before if after[p] != before[p]]
    assert not changed, f"the container overwrote the runtime's files {changed}; attack log:\n{log}"
    assert "opened-for-write" not in log, (
        f"the container could open the runtime's executable for writing:\n{log}"
    )


def wait_log(path, word, timeout):
    try:
        wait_for(lambda: word in read(path), timeout=timeout, what=f"{word!r} in the attack log")
    except AssertionError:
        pass
    return read(path)


def test_runtime_exe_not_writable_at_start(runtime_copy, make_bundle):
    """process.args ["sh"] with /bin/sh -> /proc/self/exe: at start the runtime's init executes
    itself in the container; the container's code (its dynamic loader) gets the file."""
    copy, rtc = runtime_copy
    b = make_bundle(["sh"], rootfs_copy=True, mutate=writable_rootfs)
    arm_exe_attack(b.rootfs, copy)
    before = copy.hashes()
    log = os.path.join(b.rootfs, "attack.log")
    if rtc.create(b.id, b).returncode == 0 and rtc.start(b.id).returncode == 0:
        wait_log(log, "done", 30)
    check_not_overwritten(copy, before, read(log))


def test_runtime_exe_not_writable_at_exec(runtime_copy, make_bundle):
    """The same through `exec -d <id> sh` into a running container."""
    copy, rtc = runtime_copy
    b = make_bundle(["/bin/busybox", "sleep", "1000"], rootfs_copy=True, mutate=writable_rootfs)
    arm_exe_attack(b.rootfs, copy)
    assert rtc.create(b.id, b).returncode == 0
    assert rtc.start(b.id).returncode == 0
    before = copy.hashes()
    log = os.path.join(b.rootfs, "attack.log")
    if rexec(rtc, b.id, "sh", extra=["--detach"]).returncode == 0:
        wait_log(log, "done", 30)
    check_not_overwritten(copy, before, read(log))


# A container process watching its pid namespace for processes that are not its own (the runtime's,
# entering the namespace for `exec`, or another container's init joining it): it opens their
# /proc/PID/exe and keeps it, then writes through it once the runtime is gone. The container's
# /etc/passwd may be a FIFO, served only after the watcher had its look: a runtime that reads it
# from inside the container (for HOME) waits there meanwhile.
WATCHER = (
    ATTACK_HEAD
    + r"""
if [ -p /etc/passwd ]; then
  ( k=0; while [ ! -e /tmp/go ] && [ $k -lt 300 ]; do sleep 0.05; k=$((k+1)); done
    while :; do cat /passwd.real > /etc/passwd; done ) &
fi
say "watching $$"
grabbed= seen= done=
n=0
while [ -z "$grabbed" ] && [ $n -lt 6000 ]; do  # a minute at least
  n=$((n+1))
  sleep 0.01
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    e=$(readlink $d/exe 2>/dev/null)
    [ "$e" = /bin/busybox ] && continue
    if [ -z "$e" ]; then
      [ -r $d/status ] || continue
      grep -q '^State:.Z' $d/status 2>/dev/null && continue
    fi
    case " $done " in *" $pid "*) continue ;; esac
    case " $seen " in *" $pid "*) ;; *) seen="$seen $pid"; first=${first:-$n}; say "foreign $pid exe=$e" ;; esac
    if command exec 3<$d/exe 2>/dev/null; then
      grabbed=$(readlink /proc/self/fd/3)
      if [ "$grabbed" = /bin/busybox ]; then  # too late: it is running the container's program now
        exec 3<&-; grabbed=; done="$done $pid"; say "missed $pid"; touch /tmp/go; continue
      fi
      say "grabbed $pid $grabbed"
      touch /tmp/go
      break
    fi
    # not (yet) allowed to open it: keep trying, and let a stalled runtime go on after a while
    [ $((n - first)) -gt 100 ] && touch /tmp/go
  done
done
[ -n "$grabbed" ] && { """
    + WRITE_FD3
    + r"""}
say done
"""
)


def arm_watcher(rootfs, copy):
    with open(os.path.join(rootfs, "watch.sh"), "w") as f:
        f.write(WATCHER)
    with open(os.path.join(rootfs, "attack.prefix"), "w") as f:
        f.write(copy.prefix + "\n")


def passwd_fifo(rootfs):
    """The container's /etc/passwd becomes a FIFO (after create: runtimes read it then too)."""
    passwd = os.path.join(rootfs, "etc", "passwd")
    shutil.copy2(passwd, os.path.join(rootfs, "passwd.real"))
    os.unlink(passwd)
    os.mkfifo(passwd, 0o644)


def test_runtime_process_exe_not_writable_during_exec(runtime_copy, make_bundle):
    """While `exec` runs, its helper process inside the container's pid namespace must not give
    the container the runtime's executable through /proc/PID/exe."""
    copy, rtc = runtime_copy
    b = make_bundle(["/bin/busybox", "sh", "/watch.sh"], rootfs_copy=True, mutate=writable_rootfs)
    arm_watcher(b.rootfs, copy)
    log = os.path.join(b.rootfs, "attack.log")
    assert rtc.create(b.id, b).returncode == 0
    passwd_fifo(b.rootfs)
    assert rtc.start(b.id).returncode == 0
    wait_log(log, "watching", 10)
    before = copy.hashes()
    rexec(rtc, b.id, "true", timeout=60)
    if "grabbed" in read(log):
        wait_log(log, "done", 30)
    check_not_overwritten(copy, before, read(log))


def test_runtime_process_exe_not_writable_during_create(runtime_copy, make_bundle):
    """A container whose pid namespace another container joins (a pod sharing its pid namespace)
    sees the new container's init while it is `created`: that must not give it the runtime's
    executable either."""
    copy, rtc = runtime_copy
    a = make_bundle(["/bin/busybox", "sh", "/watch.sh"], rootfs_copy=True, mutate=writable_rootfs)
    arm_watcher(a.rootfs, copy)
    log = os.path.join(a.rootfs, "attack.log")
    assert rtc.create(a.id, a).returncode == 0
    assert rtc.start(a.id).returncode == 0
    wait_log(log, "watching", 10)
    pid = rtc.state_json(a.id)["pid"]

    def join_pidns(c):
        for ns in c["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{pid}/ns/pid"

    b = make_bundle(SLEEP, mutate=join_pidns)
    before = copy.hashes()
    p = rtc.create(b.id, b)
    assert p.returncode == 0, p.stderr
    text = wait_log(log, "foreign", 10)
    assert "foreign" in text, f"the attack never saw the new container's init:\n{text}"
    wait_log(log, "grabbed", 3)
    assert rtc.start(b.id).returncode == 0
    if "grabbed" in read(log):
        wait_log(log, "done", 30)
    check_not_overwritten(copy, before, read(log))


# ---- 2. fds and cwd ----------------------------------------------------------------------------------------

UP = "../" * 40

# Every directory reachable through the fds, cwd and root of every process visible in the container
# must lead (by "..") to the container's root; a directory outside climbs to another root.
FD_CHECK = r"""
root=$(stat -c %d:%i /)
for p in /proc/[0-9]*; do
  for f in $p/cwd $p/root $p/fd/*; do
    [ -d "$f" ] || continue
    got=$(stat -L -c %d:%i "$f/UP" 2>/dev/null) || continue
    [ "$got" = "$root" ] || echo "ESCAPE $f -> $(readlink $f) reaches $got, not the root $root"
  done
done
echo checked
""".replace("UP", UP)

CWD_CHECK = (
    f'if [ "$(stat -c %d:%i {UP})" = "$(stat -c %d:%i /)" ]; then echo INSIDE; '
    'else echo "ESCAPED cwd=$(readlink /proc/self/cwd)"; fi'
)


def assert_no_escape(out):
    assert "checked" in out, out
    escapes = [ln for ln in out.splitlines() if ln.startswith("ESCAPE")]
    assert not escapes, "a directory outside the container is reachable: " + "; ".join(escapes)


def test_created_init_holds_no_host_directory(rt, make_bundle):
    """While the container is `created`, the init (the runtime's process, waiting for start) is in
    the container: another process there (an `exec`) must not reach a host directory through it."""
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    assert_no_escape(ok(rexec(rt, b.id, "sh", "-c", FD_CHECK)))


def test_callers_fds_do_not_reach_the_created_init(rt, make_bundle, tmp_path):
    """A directory fd the caller of `create` left open (no --preserve-fds) must not be in the init."""
    hostdir = tmp_path / "callers-dir"
    hostdir.mkdir()
    b = make_bundle(SLEEP)
    p = rt.create(b.id, b, prelude=f"exec 7<{hostdir} 8<{hostdir}")
    assert p.returncode == 0, p.stderr
    pid = rt.state_json(b.id)["pid"]
    links = {n: os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
    assert str(hostdir) not in links.values(), f"the init holds the caller's fds: {links}"
    assert_no_escape(ok(rexec(rt, b.id, "sh", "-c", FD_CHECK)))


def test_running_container_holds_no_host_directory(rt, make_bundle):
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    assert_no_escape(ok(rexec(rt, b.id, "sh", "-c", FD_CHECK, extra=["--cwd", "/tmp"])))


def test_exec_process_has_only_stdio(rt, make_bundle, tmp_path):
    hostdir = tmp_path / "callers-dir"
    hostdir.mkdir()
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    pid_file = tmp_path / "exec.pid"
    p = rexec(
        rt,
        b.id,
        "sleep",
        "1000",
        extra=["--detach", "--pid-file", str(pid_file), "--cwd", "/tmp"],
        prelude=f"exec 7<{hostdir}",
    )
    assert p.returncode == 0, p.stderr
    pid = int(pid_file.read_text())

    def execed():
        return read(f"/proc/{pid}/cmdline") == "sleep\x001000\x00"

    wait_for(execed, what="the exec'd process to exec")
    assert sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]


CWD_PATHS = ["/proc/self/cwd", "/proc/self/root", "/proc/thread-self/cwd", "/proc/1/cwd", "/proc/1/root"] + [
    f"/proc/self/fd/{n}" for n in range(3, 16)
]


def test_process_cwd_through_proc_stays_inside(rt, make_bundle):
    """process.cwd naming a /proc magic link (e.g. /proc/self/fd/7, CVE-2024-21626): create fails, or
    the process's cwd is inside the container."""
    escapes = []
    for cwd in CWD_PATHS:
        b = make_bundle(sh(CWD_CHECK), process={"cwd": cwd})
        p = rt.run(b.id, b)
        if p.returncode == 0 and "INSIDE" not in p.stdout:
            escapes.append(f"{cwd}: {p.stdout.strip()}")
    assert not escapes, escapes


def test_exec_cwd_through_proc_stays_inside(rt, make_bundle):
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    escapes = []
    for cwd in CWD_PATHS:
        p = rexec(rt, b.id, "sh", "-c", CWD_CHECK, extra=["--cwd", cwd])
        if p.returncode == 0 and "INSIDE" not in p.stdout:
            escapes.append(f"{cwd}: {p.stdout.strip()}")
    assert not escapes, escapes


# ---- 3. symlinks in the rootfs -----------------------------------------------------------------------------


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


class HostTarget:
    """A host directory that symlinks in a rootfs point at: it must stay exactly as it is, and
    nothing may be mounted on or under it (nor anywhere else outside the temp dirs)."""

    def __init__(self, path):
        self.path = str(path)
        os.makedirs(os.path.join(self.path, "rwdir"))
        with open(os.path.join(self.path, "secret"), "w") as f:
            f.write("host secret\n")
        self.snapshot = self._snapshot()
        self.mounts = host_mounts()

    def _snapshot(self):
        snap = {}
        for root, dirs, files in os.walk(self.path):
            for name in ["."] + dirs + files:
                p = os.path.normpath(os.path.join(root, name))
                st = os.lstat(p)
                snap[os.path.relpath(p, self.path)] = (
                    stat.S_IFMT(st.st_mode),
                    stat.S_IMODE(st.st_mode),
                    st.st_uid,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_rdev,
                )
        return snap

    def link(self, style, sub=""):
        target = os.path.join(self.path, sub) if sub else self.path
        return target if style == "absolute" else "../" * 30 + target.lstrip("/")

    def check(self):
        now = self._snapshot()
        changed = sorted(set(now.items()) ^ set(self.snapshot.items()))
        assert not changed, f"the runtime changed the host directory {self.path}: {changed}"
        new = host_mounts() - self.mounts
        bad = [
            m
            for m in new
            if m == self.path
            or m.startswith(self.path + "/")
            or not m.startswith(tempfile.gettempdir() + "/")
        ]
        assert not bad, f"mounted on the host outside the rootfs: {bad}"
        with open(os.path.join(self.path, "rwdir", "probe"), "w") as f:  # not made read-only
            f.write("x")
        os.unlink(os.path.join(self.path, "rwdir", "probe"))
        with open(os.path.join(self.path, "secret")) as f:
            assert f.read() == "host secret\n"


@pytest.fixture
def host_target(tmp_path):
    return HostTarget(tmp_path / "host-target")


# Inside the container: every procfs mounted there has its masked/read-only paths applied (masked
# files read empty, /proc/sys and /proc/sysrq-trigger refuse writes; a sysctl gets its own value
# back, a no-op if the write went through).
SYSCTL = "sys/kernel/printk_ratelimit_burst"
PROC_MASKS = r"""
for m in $(awk '{for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "proc") print $5; break }}' /proc/self/mountinfo); do
  echo "proc at $m: masked=$(cat $m/keys $m/timer_list $m/kcore 2>/dev/null | wc -c)"
  if [ -e $m/sysrq-trigger ] && ( echo h > $m/sysrq-trigger ) 2>/dev/null; then echo "WRITABLE $m/sysrq-trigger"; fi
  v=$(cat $m/SYSCTL)
  if ( echo "$v" > $m/SYSCTL ) 2>/dev/null; then echo "WRITABLE $m/SYSCTL"; fi
done
echo ran
""".replace("SYSCTL", SYSCTL)


def assert_proc_masked(out):
    assert "ran" in out and "proc at" in out, out
    assert "WRITABLE" not in out, out
    assert all(ln.endswith("masked=0") for ln in out.splitlines() if ln.startswith("proc at")), out


STYLES = ["absolute", "relative"]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("top", ["proc", "sys"])
def test_proc_or_sys_symlink_out_of_rootfs(rt, make_bundle, host_target, top, style):
    """/proc or /sys in the rootfs is a symlink to a host directory: create fails (runc: "must be mounted
    on ordinary directory") or the mount lands inside the rootfs; procfs stays masked either way."""
    b = make_bundle(sh(PROC_MASKS), rootfs_copy=True, tmp=False, mutate=writable_rootfs)
    os.rmdir(os.path.join(b.rootfs, top))
    os.symlink(host_target.link(style, "new-" + top), os.path.join(b.rootfs, top))
    p = rt.run(b.id, b)
    host_target.check()
    if p.returncode == 0 and top == "proc":
        assert_proc_masked(p.stdout)


@pytest.mark.parametrize("style", STYLES)
def test_dev_symlink_out_of_rootfs(rt, make_bundle, host_target, style):
    """No tmpfs on /dev and /dev a symlink to a host directory: the default devices, linux.devices
    and the /dev/* mounts must not be created on the host."""

    def mutate(c):
        writable_rootfs(c)
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/dev"]
        c["linux"]["devices"] = [
            {"path": "/dev/conformance-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
        ]

    b = make_bundle(["true"], rootfs_copy=True, tmp=False, mutate=mutate)
    os.rmdir(os.path.join(b.rootfs, "dev"))
    os.symlink(host_target.link(style, "dev"), os.path.join(b.rootfs, "dev"))
    rt.run(b.id, b)
    host_target.check()


@pytest.mark.parametrize("style", STYLES + ["chain"])
def test_mount_destination_through_symlinked_directory(rt, make_bundle, host_target, tmp_path, style):
    """A directory on the way to mount destinations is a symlink out of the rootfs (or a chain of
    them): the tmpfs, the bind and their missing mount points stay inside the rootfs."""
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "file").write_text("payload\n")

    def mutate(c):
        writable_rootfs(c)
        c["mounts"] += [
            {"destination": "/mnt/newdir/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
            {"destination": "/mnt/bound", "type": "bind", "source": str(payload), "options": ["rbind"]},
            {
                "destination": "/mnt/secret",
                "type": "bind",
                "source": str(payload / "file"),
                "options": ["bind"],
            },
        ]

    b = make_bundle(sh("cat /mnt/bound/file; cat /mnt/secret"), rootfs_copy=True, tmp=False, mutate=mutate)
    if style == "chain":
        # /mnt -> /a/b, /a -> ../../..<host target's parent>, and on the host <parent>/b -> host target
        parent = os.path.dirname(host_target.path)
        os.symlink("/a/b", os.path.join(b.rootfs, "mnt"))
        os.symlink("../" * 30 + parent.lstrip("/"), os.path.join(b.rootfs, "a"))
        os.symlink(os.path.basename(host_target.path), os.path.join(parent, "b"))
    else:
        os.symlink(host_target.link(style), os.path.join(b.rootfs, "mnt"))
    p = rt.run(b.id, b)
    host_target.check()
    if p.returncode == 0:
        assert p.stdout == "payload\npayload\n"


@pytest.mark.parametrize(
    "dest",
    ["/../../../../../..{target}/dotdot", "/tmp/../../../..{target}/dotdot", "//{target}/./dotdot/../dotdot"],
)
def test_mount_destination_with_dotdot(rt, make_bundle, host_target, dest):
    """A mount destination climbing with ".." stays in the rootfs (or is refused)."""
    dest = dest.format(target=host_target.path)

    def mutate(c):
        writable_rootfs(c)
        c["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})

    b = make_bundle(["true"], rootfs_copy=True, tmp=False, mutate=mutate)
    rt.run(b.id, b)
    host_target.check()


@pytest.mark.parametrize("style", STYLES)
def test_masked_and_readonly_paths_through_symlinks(rt, make_bundle, host_target, style):
    """maskedPaths/readonlyPaths whose parent in the rootfs is a symlink out of it: applied in the
    container's view (or skipped), never to the host's files."""

    def mutate(c):
        writable_rootfs(c)
        c["linux"]["maskedPaths"] = c["linux"]["maskedPaths"] + ["/mnt/secret", "/mnt/rwdir"]
        c["linux"]["readonlyPaths"] = c["linux"]["readonlyPaths"] + ["/mnt/rwdir", "/mnt"]

    b = make_bundle(["true"], rootfs_copy=True, tmp=False, mutate=mutate)
    os.symlink(host_target.link(style), os.path.join(b.rootfs, "mnt"))
    rt.run(b.id, b)
    host_target.check()


def test_proc_symlink_inside_rootfs_is_still_masked(rt, make_bundle):
    """/proc is a symlink to another directory of the rootfs: wherever procfs ends up, its masked
    and read-only paths hold (CVE-2019-16884 / CVE-2019-19921: a procfs the masks missed)."""
    b = make_bundle(sh(PROC_MASKS), rootfs_copy=True, tmp=False, mutate=writable_rootfs)
    os.rmdir(os.path.join(b.rootfs, "proc"))
    os.makedirs(os.path.join(b.rootfs, "elsewhere", "proc"))
    os.symlink("/elsewhere/proc", os.path.join(b.rootfs, "proc"))
    p = rt.run(b.id, b)
    if p.returncode == 0:
        assert_proc_masked(p.stdout)


# ---- 4. /proc and /sys -------------------------------------------------------------------------------------


def first_existing(*paths):
    for p in paths:
        if os.path.exists(p):
            return p
    pytest.skip(f"none of {paths} on this host")


def test_sysrq_trigger_not_writable(run_in):
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("no /proc/sysrq-trigger on this kernel")
    out = ok(run_in(sh("( echo h > /proc/sysrq-trigger ) 2>&1 && echo WROTE; true")))
    assert "WROTE" not in out and "Read-only file system" in out, out


def write_back(path):
    """Shell: write a file's own value back (a no-op if it goes through); prints the error or WROTE."""
    return f'v=$(cat {path}); ( echo "$v" > {path} ) 2>&1 && echo WROTE-{path}; '


def test_proc_sys_read_only(run_in):
    """A global sysctl must not be writable, and the container cannot remount /proc/sys read-write."""
    out = ok(
        run_in(
            sh(
                write_back("/proc/" + SYSCTL)
                + "mount -o remount,rw /proc/sys 2>/dev/null && echo REMOUNTED; "
                "echo end"
            )
        )
    )
    assert "WROTE" not in out and "Read-only file system" in out, out
    assert "REMOUNTED" not in out, out


def test_proc_masks_in_exec(rt, make_bundle):
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    assert_proc_masked(ok(rexec(rt, b.id, "sh", "-c", PROC_MASKS)))


def test_proc_masks_in_init(run_in):
    assert_proc_masked(ok(run_in(sh(PROC_MASKS))))


def test_masked_paths_cannot_be_unmasked(run_in):
    """Masked files read empty and the container (default capabilities) cannot unmount the masks;
    masked directories are empty and read-only."""
    files = [
        f for f in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug") if os.path.exists(f)
    ]
    dirs = [d for d in ("/proc/acpi", "/proc/scsi", "/sys/firmware") if os.path.isdir(d)]
    script = "".join(
        f"umount {f} 2>/dev/null && echo UNMOUNTED-{f}; umount -l {f} 2>/dev/null && echo UNMOUNTED-{f}; "
        f"cat {f} | wc -c; "
        for f in files
    )
    script += "".join(f"touch {d}/x 2>/dev/null && echo WROTE-{d}; ls -A {d} | wc -l; " for d in dirs)
    out = ok(run_in(sh(script + "true")))
    assert "UNMOUNTED" not in out and "WROTE" not in out, out
    assert out.split() == ["0"] * (len(files) + len(dirs)), out


def test_sys_read_only(run_in):
    f = first_existing(
        "/sys/kernel/mm/ksm/pages_to_scan",
        "/sys/kernel/mm/ksm/sleep_millisecs",
        "/sys/block/vda/queue/read_ahead_kb",
        "/sys/block/sda/queue/read_ahead_kb",
    )
    script = (
        write_back(f) + "for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do "
        'mkdir "$d/conformance-escape" 2>/dev/null && echo MKDIR-$d; done; '
        "mount -o remount,rw /sys 2>/dev/null && echo REMOUNTED; echo end"
    )
    out = ok(run_in(sh(script)))
    assert "WROTE" not in out and "Read-only file system" in out, out
    assert "MKDIR" not in out and "REMOUNTED" not in out, out


# ---- 5. devices --------------------------------------------------------------------------------------------

# Opening (not reading or writing) tells whether the device cgroup lets a node through: EPERM if not;
# otherwise whatever the driver says (this host may well have no disk of major 8: ENXIO).
OPEN_R = (
    '( exec 3<{0} ) 2>&1 | grep -q "Operation not permitted" && echo {1}-r-denied || echo {1}-r-allowed; '
)
OPEN_W = (
    '( exec 3>>{0} ) 2>&1 | grep -q "Operation not permitted" && echo {1}-w-denied || echo {1}-w-allowed; '
)


def probe(path, name):
    return OPEN_R.format(path, name) + OPEN_W.format(path, name)


def test_device_node_not_in_allow_list_cannot_be_opened(run_in):
    """linux.devices makes the node; linux.resources.devices (deny all) does not allow it: open fails
    with EPERM, for reading and writing. The default devices still work."""

    def mutate(c):
        c["linux"]["devices"] = [
            {"path": "/dev/conformance-sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660}
        ]

    out = ok(run_in(sh(probe("/dev/conformance-sda", "sda") + probe("/dev/null", "null")), mutate=mutate))
    assert out.split() == ["sda-r-denied", "sda-w-denied", "null-r-allowed", "null-w-allowed"]


def test_mknod_of_denied_device_cannot_be_opened(run_in):
    """With CAP_MKNOD the container may make any node ("m" is allowed), but not open one it is denied."""
    caps = ["CAP_MKNOD", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"]
    script = "mknod /dev/conformance-sdb b 8 16 && " + probe("/dev/conformance-sdb", "sdb")
    out = ok(
        run_in(
            sh(script), process={"capabilities": {s: caps for s in ("bounding", "effective", "permitted")}}
        )
    )
    assert out.split() == ["sdb-r-denied", "sdb-w-denied"]


def test_device_access_limited_to_allowed_types(run_in):
    """A rule allowing "r" only: opening for reading passes the cgroup, for writing does not."""

    def mutate(c):
        c["linux"]["devices"] = [
            {"path": "/dev/conformance-sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660}
        ]
        c["linux"]["resources"]["devices"].append(
            {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"}
        )

    out = ok(run_in(sh(probe("/dev/conformance-sda", "sda")), mutate=mutate))
    assert out.split() == ["sda-r-allowed", "sda-w-denied"]


def test_denied_device_in_exec(rt, make_bundle):
    def mutate(c):
        c["linux"]["devices"] = [
            {"path": "/dev/conformance-sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660}
        ]

    b = make_bundle(SLEEP, mutate=mutate)
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    out = ok(rexec(rt, b.id, "sh", "-c", probe("/dev/conformance-sda", "sda")))
    assert out.split() == ["sda-r-denied", "sda-w-denied"]
