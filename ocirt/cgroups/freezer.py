"""The two freezers: v1's freezer.state and v2's cgroup.freeze (also used on a hybrid host
without a v1 freezer). Each function takes the file seam and the cgroup directory. Whether a
cgroup is frozen is read by state.py (cgroup_frozen, freezer_dir), where the status is derived:
`state`, `start` and `kill` then load nothing of the cgroups package."""

import time

from ..errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .fs import CgroupFS


def freeze_v1(fs: "CgroupFS", d: str, timeout: float) -> None:
    path = f"{d}/freezer.state"
    deadline = time.monotonic() + timeout
    i = 0
    try:
        while True:
            # v1 can stay FREEZING while tasks keep appearing; re-writing FROZEN and now
            # and then thawing briefly gets it unstuck (what runc does, too).
            if i % 50 == 49:
                fs.write(path, "THAWED")
                fs.sleep(0.01)
            fs.write(path, "FROZEN")
            state = fs.read(path).strip()
            if state == "FROZEN":
                return
            if state != "FREEZING":
                raise OcirtError(f"cannot freeze cgroup {d}: state is {state} after writing FROZEN")
            if time.monotonic() >= deadline:
                fs.write(path, "THAWED")
                raise OcirtError(f"cannot freeze cgroup {d}: still FREEZING after {timeout:g}s")
            i += 1
            if i > 3:
                fs.sleep(0.001)
    except OSError as e:
        raise OcirtError(f"cannot freeze cgroup {d}", errno=e.errno) from None


def freeze_v2(fs: "CgroupFS", d: str, timeout: float) -> None:
    try:
        fs.write(f"{d}/cgroup.freeze", "1")
    except OSError as e:
        raise OcirtError(f"cannot freeze cgroup {d}", errno=e.errno) from None
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            events = fs.read(f"{d}/cgroup.events")
        except OSError as e:
            raise OcirtError(f"cannot freeze cgroup {d}", errno=e.errno) from None
        if "frozen 1" in events.splitlines():
            return
        if time.monotonic() >= deadline:
            try:
                fs.write(f"{d}/cgroup.freeze", "0")
            except OSError:
                pass
            raise OcirtError(f"cannot freeze cgroup {d}: not frozen after {timeout:g}s")
        fs.sleep(delay)
        delay = min(delay * 2, 0.02)


def thaw(fs: "CgroupFS", d: str, v2: bool) -> None:
    path, value = (f"{d}/cgroup.freeze", "0") if v2 else (f"{d}/freezer.state", "THAWED")
    try:
        fs.write(path, value)
    except OSError as e:
        raise OcirtError(f"cannot thaw cgroup {d}", errno=e.errno) from None


def effectively_frozen(fs: "CgroupFS", d: str | None, v2: bool) -> bool:
    """True if processes put in the cgroup would not run: frozen itself or by an ancestor
    (v1 freezer.state says FROZEN or FREEZING for both; v2 cgroup.events says frozen)."""
    if not d:
        return False
    try:
        if v2:
            if fs.read(f"{d}/cgroup.freeze").strip() == "1":
                return True
            return "frozen 1" in fs.read(f"{d}/cgroup.events").splitlines()
        return fs.read(f"{d}/freezer.state").strip() in ("FROZEN", "FREEZING")
    except OSError:
        return False
