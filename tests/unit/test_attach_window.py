"""ocirt/attach_window.py: which cgroup.procs the warm-up writes, and that it moves nothing."""

from ocirt import attach_window


def test_v2_line_first_where_a_v2_mount_exists(monkeypatch):
    present = {
        "/sys/fs/cgroup/unified/cgroup.controllers",
        "/sys/fs/cgroup/unified/user.slice/cgroup.procs",
        "/sys/fs/cgroup/cpu,cpuacct/user.slice/cgroup.procs",
    }
    monkeypatch.setattr(attach_window, "exists", lambda p: p in present)
    text = "4:cpu,cpuacct:/user.slice\n0::/user.slice\n"
    assert attach_window.own_procs_file(text) == "/sys/fs/cgroup/unified/user.slice/cgroup.procs"


def test_pure_v2_root(monkeypatch):
    present = {"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/cgroup.procs"}
    monkeypatch.setattr(attach_window, "exists", lambda p: p in present)
    assert attach_window.own_procs_file("0::/\n") == "/sys/fs/cgroup/cgroup.procs"


def test_v1_only_and_named_hierarchies(monkeypatch):
    present = {"/sys/fs/cgroup/systemd/a/cgroup.procs"}
    monkeypatch.setattr(attach_window, "exists", lambda p: p in present)
    assert attach_window.own_procs_file("1:name=systemd:/a\n") == "/sys/fs/cgroup/systemd/a/cgroup.procs"


def test_a_v2_path_is_never_looked_up_under_a_v1_mount(monkeypatch):
    # hybrid, own v2 cgroup named like a v1 hierarchy: /sys/fs/cgroup/cpu is v1's root, not it
    present = {"/sys/fs/cgroup/cpu/cgroup.procs"}
    monkeypatch.setattr(attach_window, "exists", lambda p: p in present)
    assert attach_window.own_procs_file("0::/cpu\n") is None


def test_nothing_usable(monkeypatch):
    monkeypatch.setattr(attach_window, "exists", lambda p: False)
    assert attach_window.own_procs_file("") is None
    assert attach_window.own_procs_file("garbage\n0::/x\n") is None


def test_a_window_never_started_can_be_waited_on_and_closed():
    window = attach_window.Window()
    window.wait_open()
    window.close()


def test_the_warm_up_leaves_this_process_where_it_was():
    with open("/proc/self/cgroup") as f:
        before = f.read()
    window = attach_window.start()
    window.wait_open()
    window.close()
    window.close()  # twice is fine
    with open("/proc/self/cgroup") as f:
        assert f.read() == before


def test_the_thread_ends_by_itself():
    import _thread
    import time

    before = _thread._count()
    window = attach_window.Window().start(keep=0.05, every=0.01)
    window.wait_open()
    deadline = time.monotonic() + 5
    while _thread._count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _thread._count() == before


def test_end_waits_until_the_thread_is_gone_from_the_process():
    """end(): closed, and the thread gone as /proc/self/stat counts threads (what clone3 into a
    cgroup needs: a process with one thread); in a child, as pytest's workers have threads."""
    import subprocess
    import sys

    code = (
        "from ocirt import attach_window as w\n"
        "window = w.Window().start(keep=5.0)\n"
        "window.wait_open()\n"
        "opened = w.threads()\n"
        "window.end()\n"
        "print(opened, w.threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    opened, after = out.stdout.split()
    assert after == "1"
    assert opened in ("1", "2")  # 1: no window to be had here (no cgroupfs, no permission)
