"""checkpoint and restore with CRIU, by ocirt and by runc side by side.

Where CRIU works (`criu check` passes: the v2 VM of scripts/v2vm-tests.sh), a busybox container
with a counter in memory and an open file is checkpointed and restored, and goes on counting
from where it was: with a terminal (--console-socket on both sides), exec into it afterwards;
--leave-running, pre-dump + final dump, restore in the foreground (exit status); lazy pages
through a page server. Where CRIU cannot work on the kernel (`criu check` fails: this host),
ocirt says so in one line. A failed restore leaves nothing. (Each ocirt command costs seconds
in the emulated VM: the tests are few and each does much.)
The wire format of the RPC messages is checked everywhere.
"""

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
from cli_helpers import OCIRT, REPO, ConsoleSocket, make_bundle, remove_cgroup_parent

from ocirt import criu

CG_PARENT = "ocirt-criu-test"
MiB = 1024 * 1024
# the counter: in the shell's memory, appended through fd 3 (open across the checkpoint)
COUNTER = ["sh", "-c", "i=0; exec 3>>/data/count; while true; do i=$((i+1)); echo $i >&3; sleep 0.1; done"]


def _criu_works() -> bool:
    if os.geteuid() != 0 or shutil.which("criu") is None:
        return False
    return (
        subprocess.run(["criu", "check"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        == 0
    )


CRIU_WORKS = _criu_works()
needs_criu = pytest.mark.skipif(not CRIU_WORKS, reason="`criu check` fails on this kernel")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("criu") is None, reason="root and criu needed"
)
RUNTIMES = {"ocirt": OCIRT, "runc": ["runc"]}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class Box:
    """One container of one runtime, driven by its command line."""

    def __init__(self, runtime, root, bundle, data, cid):
        self.cmd, self.root, self.bundle, self.data, self.id = runtime, root, bundle, data, cid
        self.exec_own_session = False

    def run(self, *args, check=True, cid=None, tail=()):
        argv = [*self.cmd, "--root", self.root, *args, cid or self.id, *tail]
        if args[0] in ("run", "restore"):
            # the container keeps the runtime's stdio: /dev/null (CRIU dumps no file of the
            # host's mounts; the init reopens /dev/null as the container's), the error in --log
            log = os.path.join(self.root + ".log")
            p = subprocess.run(
                [*self.cmd, "--log", log, *argv[len(self.cmd) :]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=REPO,
                timeout=120,
            )
            p.stdout, p.stderr = "", _read(log)
        else:
            p = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=REPO, timeout=120
            )
        if check:
            assert p.returncode == 0, f"{args}: {p.stderr}"
        return p

    def state(self, cid=None):
        p = self.run("state", check=False, cid=cid)
        return json.loads(p.stdout) if p.returncode == 0 else None

    def count(self) -> list:
        with open(os.path.join(self.data, "count")) as f:
            return [int(x) for x in f.read().split()]

    def wait_count(self, above: int, timeout: float = 30) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                values = self.count()
                if values and values[-1] > above:
                    return values
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the counter did not pass {above}")

    def cgroup_dir(self):
        return f"/sys/fs/cgroup/{CG_PARENT}/{self.id}"


@pytest.fixture
def box(request, tmp_path, busybox_rootfs):
    """A running counter container of the runtime named by the test's parameter."""
    boxes = []

    def make(runtime: str, args=COUNTER, run_args=(), **process):
        data = tmp_path / "data"
        data.mkdir()
        bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, args, **process)
        with open(os.path.join(bundle, "config.json")) as f:
            config = json.load(f)
        config["mounts"].append(
            {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "rw"]}
        )
        cid = f"criu-{runtime}-{uuid.uuid4().hex[:8]}"
        config["linux"]["cgroupsPath"] = f"/{CG_PARENT}/{cid}"
        config["linux"]["resources"] = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 64}}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        root = f"/run/ocirt-criu-test/{cid}"
        os.makedirs(os.path.dirname(root), exist_ok=True)
        b = Box(RUNTIMES[runtime], root, bundle, str(data), cid)
        boxes.append(b)
        b.run("run", "-d", *run_args, "-b", bundle)
        b.wait_count(3)
        return b

    yield make
    for b in boxes:
        for cid in (b.id,):
            if not os.path.exists(os.path.join(b.root, cid)):
                continue
            subprocess.run(
                [*b.cmd, "--root", b.root, "delete", "--force", cid],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        shutil.rmtree(b.root, ignore_errors=True)
        if os.path.exists(b.root + ".log"):
            os.unlink(b.root + ".log")
        try:
            os.rmdir(os.path.dirname(b.root))  # the last one out (xdist) removes it
        except OSError:
            pass
    remove_cgroup_parent(CG_PARENT)


def _restored_ok(b: Box, cid: str, exec_too: bool = True) -> dict:
    """state says running with the restored pid, in its cgroup with its limits; exec works."""
    st = b.state(cid)
    assert st is not None and st["status"] == "running" and st["pid"] > 0
    with open(f"/proc/{st['pid']}/cgroup") as f:
        cgroups = f.read()
    assert f"/{CG_PARENT}/{cid}\n" in cgroups, cgroups  # its own, not the checkpointed one's
    cg = f"/sys/fs/cgroup/{CG_PARENT}/{cid}"
    if os.path.exists(os.path.join(cg, "memory.max")):  # cgroup v2
        with open(os.path.join(cg, "memory.max")) as f:
            assert int(f.read()) == 64 * MiB
        with open(os.path.join(cg, "cgroup.procs")) as f:
            assert str(st["pid"]) in f.read().split()
    if exec_too:
        b.exec_own_session = _exec_joins(b, cid)
    return st


# the exec'd shell's pid, its /proc/self/stat (cat's: its session is the shell's), the namespaces of
# the exec'd process and of pid 1, pid 1's command line
EXEC_PROBE = (
    "echo $$; cat /proc/self/stat; ls -l /proc/self/ns/; echo ==; ls -l /proc/1/ns/; cat /proc/1/cmdline"
)


def _exec_joins(b: Box, cid: str) -> bool:
    """exec into the restored container: it joins the restored init's namespaces; whether the
    exec'd process leads a session of its own (runc's does: nsexec's setsid)."""
    out = b.run("exec", cid=cid, tail=["sh", "-c", EXEC_PROBE]).stdout
    lines = out.split("\n")
    shell = int(lines[0])
    session = int(lines[1].rsplit(")", 1)[1].split()[3])  # after comm: state ppid pgrp session
    listings = out.split("\n==\n")
    assert len(listings) == 2, out

    def ns(text):
        return dict(m.groups() for m in re.finditer(r" (\w+) -> (\w+:\[\d+\])", text))

    exec_ns, init_ns = ns(listings[0]), ns(listings[1])
    assert exec_ns and exec_ns.keys() == init_ns.keys(), out
    differ = {name for name in exec_ns if exec_ns[name] != init_ns[name]}
    # CRIU restores into a time namespace of its own; runc 1.1.5's exec joins only the kinds
    # config.json lists (no time there), ocirt's all of the init's
    assert differ <= ({"time", "time_for_children"} if b.cmd != OCIRT else set()), out
    assert lines[-1].startswith("sh\0-c\0"), out  # pid 1 is the restored shell
    return session == shell


def _kill_and_delete(b: Box, cid: str, pid: int) -> None:
    b.run("kill", cid=cid, tail=["KILL"])
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except OSError:
            break
        time.sleep(0.05)
    b.run("delete", cid=cid)
    assert not os.path.exists(os.path.join(b.root, cid))
    assert not os.path.exists(f"/sys/fs/cgroup/{CG_PARENT}/{cid}")


# -- where CRIU works ---------------------------------------------------------------------------------


# the counter, also printed on the terminal
TTY_COUNTER = [
    "sh",
    "-c",
    "i=0; exec 3>>/data/count; while true; do i=$((i+1)); echo $i >&3; echo tty-$i; sleep 0.1; done",
]


def _tty_numbers(master: int, above: int, timeout: float = 30) -> list:
    """The tty-N values read from the pty master until one is above `above`."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 0.5)[0]:
            continue
        try:
            out += os.read(master, 4096)
        except OSError:  # EIO: no slave open
            break
        values = [int(x) for x in re.findall(rb"tty-(\d+)\r?\n", out)]
        if values and values[-1] > above:
            return values
    raise AssertionError(f"no tty-N above {above} on the terminal: {out[-200:]!r}")


@needs_criu
@pytest.mark.parametrize("runtime", ["ocirt", "runc"])
def test_checkpoint_and_restore_goes_on_counting(box, runtime, tmp_path):
    """A container with a terminal (as engines run them, the pty master sent to --console-socket)
    is checkpointed and restored with --console-socket: the new pty master (CRIU's
    orphan-pts-master) arrives over the socket, the same shell goes on counting and writes to it;
    exec joins the restored container."""
    sock = ConsoleSocket(str(tmp_path / "console.sock"))
    try:
        b = box(runtime, TTY_COUNTER, run_args=("--console-socket", sock.path), terminal=True)
        _, master = sock.receive()
        _tty_numbers(master, 2)
        images = str(tmp_path / "images")
        b.run("checkpoint", "--image-path", images)
        assert not os.path.exists(os.path.join(b.root, b.id))  # checkpointed: the container is gone
        before = b.count()
        assert before == list(range(1, len(before) + 1))
        os.close(master)  # the engine's end of the old terminal goes away with the container
        sock.master = None
        b.run("restore", "-d", "--console-socket", sock.path, "-b", b.bundle, "--image-path", images)
        _, master = sock.receive()
        assert os.isatty(master)
        on_tty = _tty_numbers(master, before[-1] + 2)
        assert on_tty[-1] == on_tty[0] + len(on_tty) - 1  # consecutive, from after the restore
        # the same shell goes on: the count continues in the file it had open, no restart at 1
        after = b.wait_count(on_tty[-1] - 1)
        assert after == list(range(1, len(after) + 1))
        st = _restored_ok(b, b.id)
        _kill_and_delete(b, b.id, st["pid"])
    finally:
        sock.close()
    assert b.exec_own_session, "the exec'd process leads a session of its own (as runc's: nsexec's setsid)"


# the counter, until /data/stop shows up; then exit 7
STOPPABLE = [
    "sh",
    "-c",
    "i=0; exec 3>>/data/count; while [ ! -e /data/stop ]; do i=$((i+1)); echo $i >&3; sleep 0.1; done; "
    "exit 7",
]


@needs_criu
@pytest.mark.parametrize("runtime", ["ocirt", "runc"])
def test_leave_running_then_pre_dump_and_final_dump(box, runtime, tmp_path):
    """--leave-running; a pre-dump and a final dump on top of it; then a restore in the
    foreground (no -d): the runtime waits for the restored container, exits with its exit status,
    and the container is deleted."""
    b = box(runtime, STOPPABLE)
    b.run("checkpoint", "--leave-running", "--image-path", str(tmp_path / "copy"))
    st = b.state()
    assert st is not None and st["status"] == "running"
    b.wait_count(b.count()[-1] + 3)  # still counting
    b.run("checkpoint", "--pre-dump", "--image-path", str(tmp_path / "pre"))
    assert b.state()["status"] == "running"
    b.run("checkpoint", "--parent-path", "../pre", "--image-path", str(tmp_path / "final"))
    assert not os.path.exists(os.path.join(b.root, b.id))
    before = b.count()
    log = b.root + ".log"
    images = str(tmp_path / "final")
    proc = subprocess.Popen(
        [*b.cmd, "--log", log, "--root", b.root, "restore", "-b", b.bundle, "--image-path", images, b.id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        while b.count()[-1] <= before[-1] + 3:
            assert proc.poll() is None, f"restore exited {proc.returncode}: {_read(log)}"
            assert time.monotonic() < deadline, "the restored counter did not go on"
            time.sleep(0.1)
        _restored_ok(b, b.id, exec_too=False)
        assert proc.poll() is None  # still waiting for the container
        with open(os.path.join(b.data, "stop"), "w"):
            pass
        assert proc.wait(timeout=60) == 7, _read(log)
        # memory changed after the pre-dump came from the final dump: the count went on
        after = b.count()
        assert after == list(range(1, len(after) + 1))
        assert b.state() is None and not os.path.exists(os.path.join(b.root, b.id))
        assert not os.path.exists(b.cgroup_dir())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _lazy_pages_work() -> bool:
    """CRIU's userfaultfd check (what runc's own tests ask before they try lazy pages)."""
    check = ["criu", "check", "--feature", "uffd-noncoop"]
    return CRIU_WORKS and subprocess.run(check, capture_output=True).returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_criu
@pytest.mark.parametrize("runtime", ["ocirt", "runc"])
def test_lazy_pages_through_a_page_server(box, runtime, tmp_path):
    """Lazy migration as runc's tests do it: `checkpoint --lazy-pages --page-server` dumps and then
    serves the memory pages (saying so on --status-fd); `criu lazy-pages` fetches them for the
    restore; `restore --lazy-pages` of a second container (the first one is there until its last
    page is sent) goes on counting; then the checkpoint ends and the first container is gone."""
    if not _lazy_pages_work():
        pytest.skip("CRIU has no userfaultfd (uffd-noncoop) here")
    b = box(runtime)
    images, work = str(tmp_path / "images"), str(tmp_path / "work")
    os.mkdir(images)
    port = _free_port()
    log = b.root + ".log"
    r, w = os.pipe()
    cmd = [*b.cmd, "--log", log, "--root", b.root]
    dump = subprocess.Popen(
        [*cmd, "checkpoint", "--lazy-pages", "--page-server", f"127.0.0.1:{port}", "--status-fd", str(w)]
        + ["--image-path", images, "--work-path", work, b.id],
        pass_fds=(w,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    os.close(w)
    procs = [dump]
    copy = b.id + "-lazy"
    try:
        ready = select.select([r], [], [], 120)[0]
        assert ready and os.read(r, 1) == b"\0", f"no status-ready: {_read(log)}"
        procs.append(
            subprocess.Popen(
                ["criu", "lazy-pages", "--page-server", "--address", "127.0.0.1", "--port", str(port)]
                + ["--images-dir", images, "--log-file", "lazy-pages.log"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        before = b.count()
        # the copy: its own cgroup; CRIU's lazy-pages socket is in its work dir (the images dir)
        with open(os.path.join(b.bundle, "config.json")) as f:
            config = json.load(f)
        config["linux"]["cgroupsPath"] = f"/{CG_PARENT}/{copy}"
        with open(os.path.join(b.bundle, "config.json"), "w") as f:
            json.dump(config, f)
        b.run(
            "restore",
            "-d",
            "--lazy-pages",
            "-b",
            b.bundle,
            "--image-path",
            images,
            "--work-path",
            images,
            cid=copy,
        )
        assert dump.wait(timeout=120) == 0, _read(log)
        assert procs[1].wait(timeout=120) == 0, _read(os.path.join(images, "lazy-pages.log"))[-2000:]
        assert b.state() is None  # the checkpointed one is gone
        if runtime == "runc":
            # runc 1.1.5 on cgroup v2 gives CRIU no cgroup root: the copy goes back into the
            # cgroup it was dumped from, the checkpointed container's (runc leaves it behind)
            st = b.state(copy)
            with open(f"/proc/{st['pid']}/cgroup") as f:
                assert f.read() in (f"0::/{CG_PARENT}/{b.id}\n", f"0::/{CG_PARENT}/{copy}\n")
        else:
            st = _restored_ok(b, copy, exec_too=False)
        after = b.wait_count(before[-1] + 3)
        assert after == list(range(1, len(after) + 1))
        _kill_and_delete(b, copy, st["pid"])
    finally:
        os.close(r)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.path.exists(os.path.join(b.root, copy)):
            b.run("delete", "--force", cid=copy, check=False)
        for cid in (b.id, copy):  # what the copy's processes kept busy
            try:
                os.rmdir(f"/sys/fs/cgroup/{CG_PARENT}/{cid}")
            except OSError:
                pass


# -- where it does not, and failures --------------------------------------------------------------------


@needs_root
@pytest.mark.skipif(CRIU_WORKS, reason="`criu check` passes here: the VM tests cover it")
def test_checkpoint_where_criu_cannot_is_one_line(box, tmp_path):
    b = box("ocirt")
    images = tmp_path / "images"
    p = b.run("checkpoint", "--image-path", str(images), check=False)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "checkpoint failed" in lines[0] and "log file: " in lines[0]
    assert "criu check" in lines[0]
    assert not images.exists()  # nothing left behind
    assert b.state()["status"] == "running"  # the container is untouched
    b.wait_count(b.count()[-1] + 2)


@needs_root
@pytest.mark.skipif(CRIU_WORKS, reason="`criu check` passes here: the VM tests cover it")
def test_lazy_pages_where_criu_cannot_is_one_line(box, tmp_path):
    """checkpoint and restore --lazy-pages ask CRIU first; where it cannot answer (or has no
    userfaultfd), one line says so and nothing is left behind."""
    b = box("ocirt")
    images = tmp_path / "images"
    p = b.run(
        "checkpoint",
        "--lazy-pages",
        "--page-server",
        "127.0.0.1:27000",
        "--image-path",
        str(images),
        check=False,
    )
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1 and "--lazy-pages: CRIU cannot" in p.stderr, p.stderr
    assert not images.exists()
    assert b.state()["status"] == "running"
    images.mkdir()
    copy = b.id + "-lazy"
    p = b.run(
        "restore", "-d", "--lazy-pages", "-b", b.bundle, "--image-path", str(images), cid=copy, check=False
    )
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1 and "--lazy-pages: CRIU cannot" in p.stderr, p.stderr
    assert b.state(copy) is None and not os.path.exists(os.path.join(b.root, copy))


@needs_root
def test_failed_restore_leaves_nothing(tmp_path, busybox_rootfs):
    bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["sleep", "100"])
    root = str(tmp_path / "root")
    cid = f"criu-fail-{uuid.uuid4().hex[:8]}"
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["linux"]["cgroupsPath"] = f"/{CG_PARENT}/{cid}"
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    try:
        for images in (tmp_path / "missing", tmp_path / "empty"):
            if images.name == "empty":
                images.mkdir()
            p = subprocess.run(
                [*OCIRT, "--root", root, "restore", "-d", "--image-path", str(images), "-b", bundle, cid],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=REPO,
            )
            assert p.returncode == 1
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
            assert not os.path.exists(os.path.join(root, cid))
            assert not any(
                os.path.exists(f"/sys/fs/cgroup/{h}/{CG_PARENT}/{cid}") for h in os.listdir("/sys/fs/cgroup")
            ) and not os.path.exists(f"/sys/fs/cgroup/{CG_PARENT}/{cid}")
        assert "restore failed" in p.stderr and "log file: " in p.stderr
        assert not os.path.ismount(os.path.join(root, cid, "criu-root"))
    finally:
        remove_cgroup_parent(CG_PARENT)


# -- the RPC messages -------------------------------------------------------------------------------------


def test_request_encoding_round_trips():
    opts = {
        "images_dir_fd": 5,
        "pid": 1234,
        "leave_running": True,
        "log_file": "dump.log",
        "root": "/r",
        "ext_mnt": [{"key": "/data", "val": "/data"}, {"key": "/dev/null", "val": "/dev/null"}],
        "manage_cgroups_mode": criu.CG_MODES["soft"],
        "status_fd": -1,
        "external": ["net[4026531992]:extRootNetNS"],
    }
    data = criu.encode("criu_req", {"type": criu.DUMP, "opts": opts, "notify_success": True})
    assert data[:2] == b"\x08\x01"  # field 1 (type), varint 1 (DUMP)
    back = criu.decode("criu_req", data)
    assert back["type"] == criu.DUMP and back["notify_success"] is True
    assert back["opts"] == opts


def test_response_decoding_skips_unknown_fields():
    # criu_resp: type RESTORE, success, restore {pid: 42}, an unknown field 99 (varint),
    # cr_errno -1 (ten-byte varint)
    data = criu.encode(
        "criu_resp", {"type": criu.RESTORE, "success": True, "restore": {"pid": 42}, "cr_errno": -1}
    )
    data += bytes([99 << 3 & 0x7F | 0x80, 99 >> 4, 7])
    resp = criu.decode("criu_resp", data)
    assert resp == {"type": criu.RESTORE, "success": True, "restore": {"pid": 42}, "cr_errno": -1}


@pytest.mark.skipif(shutil.which("criu") is None, reason="criu not installed")
@needs_root
def test_version_over_rpc():
    major, minor, _ = criu.version("criu")
    assert (major, minor) >= (3, 0)


def test_missing_criu_is_one_line(tmp_path):
    with pytest.raises(criu.OcirtError) as e:
        criu.version(str(tmp_path / "no-criu"))
    assert str(e.value) == (
        f"cannot run criu ({tmp_path}/no-criu): no such file or directory "
        "(install criu, or give its path with --criu)"
    )


def test_a_failure_names_no_log_of_an_earlier_run(tmp_path, monkeypatch):
    """The log of an earlier checkpoint where this one's goes: taken away before CRIU runs, so
    neither its reason nor its path is given for a run that wrote none (a missing criu)."""
    from ocirt import checkpoint

    log = tmp_path / "dump.log"
    log.write_text("(00.1) Error (criu/vdso.c:1): an earlier run's reason\n")
    checkpoint.fresh_log(str(log))
    assert not log.exists()
    try:
        criu.version(str(tmp_path / "no-criu"))
    except criu.OcirtError as e:
        error = checkpoint.failure(e, "checkpoint failed", str(log), str(tmp_path / "no-criu"))
    assert str(error) == (
        f"checkpoint failed: cannot run criu ({tmp_path}/no-criu): no such file or directory "
        "(install criu, or give its path with --criu)"
    )


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
