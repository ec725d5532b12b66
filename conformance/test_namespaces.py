"""linux.namespaces (config-linux.md "Namespaces"), uidMappings/gidMappings, timeOffsets."""

import os
import socket

import pytest
from runtime import assert_failed_cleanly, ok, sh, wait_for

# config type -> /proc/PID/ns/<name>
NS_FILE = {
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "mount": "mnt",
    "cgroup": "cgroup",
    "user": "user",
    "time": "time",
}


def host_ns(kind, pid="self"):
    return os.readlink(f"/proc/{pid}/ns/{NS_FILE[kind]}")


def set_namespaces(*kinds, **paths):
    """mutate(): linux.namespaces = kinds (new ones) + paths (type=path, joined)."""

    def mutate(c):
        c["linux"]["namespaces"] = [{"type": k} for k in kinds] + [
            {"type": k, "path": p} for k, p in paths.items()
        ]
        if "uts" not in kinds and "uts" not in paths:
            c.pop("hostname", None)

    return mutate


def add_namespaces(*entries):
    def mutate(c):
        c["linux"]["namespaces"].extend(entries)

    return mutate


USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def userns(c):
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = USERNS_MAP
    c["linux"]["gidMappings"] = USERNS_MAP


# ---- new vs inherited ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pid", "network", "ipc", "uts", "mount", "cgroup"])
def test_new_namespace(run_in, kind):
    mutate = None if kind != "cgroup" else add_namespaces({"type": "cgroup"})
    out = ok(run_in(sh(f"readlink /proc/self/ns/{NS_FILE[kind]}"), mutate=mutate))
    assert out.strip() != host_ns(kind), f"{kind}: the container is in the runtime's namespace"


@pytest.mark.parametrize("kind", ["pid", "network", "ipc", "uts", "cgroup", "user", "time"])
def test_absent_namespace_is_inherited(run_in, kind):
    if not os.path.exists(f"/proc/self/ns/{NS_FILE[kind]}"):
        pytest.skip(f"no {kind} namespaces on this kernel")
    kinds = [k for k in ("pid", "network", "ipc", "uts", "mount") if k != kind]
    out = ok(run_in(sh(f"readlink /proc/self/ns/{NS_FILE[kind]}"), mutate=set_namespaces(*kinds)))
    assert out.strip() == host_ns(kind)


# ---- pid -------------------------------------------------------------------------------------------


def test_pid_ns_init_is_pid_1(run_in):
    out = ok(run_in(sh("echo $$; ls -d /proc/[0-9]* | wc -l")))
    pid, nprocs = out.split()
    assert pid == "1"
    assert int(nprocs) <= 3  # sh, ls, wc at most: nothing of the host


# ---- uts -------------------------------------------------------------------------------------------


def test_uts_hostname(run_in):
    before = socket.gethostname()
    out = ok(run_in(sh("hostname; cat /proc/sys/kernel/hostname"), hostname="conformance-host"))
    assert out.split() == ["conformance-host", "conformance-host"]
    assert socket.gethostname() == before


@pytest.mark.runc_deviates("runc 1.1.5 ignores `domainname` (support came in runc 1.2)")
def test_uts_domainname(run_in):
    with open("/proc/sys/kernel/domainname") as f:
        before = f.read()
    out = ok(run_in(sh("cat /proc/sys/kernel/domainname"), domainname="conformance.example"))
    assert out.strip() == "conformance.example"
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read() == before


# ---- ipc -------------------------------------------------------------------------------------------


def test_ipc_ns_isolates_sysv_ipc(run_in):
    # A fresh ipc namespace has no SysV objects at all (only the header lines).
    out = ok(
        run_in(sh("cat /proc/sysvipc/shm /proc/sysvipc/msg /proc/sysvipc/sem | grep -vc '^ *key'; true"))
    )
    assert out.strip() == "0"


# ---- network ---------------------------------------------------------------------------------------


def test_net_ns_only_loopback_and_up(run_in):
    out = ok(run_in(sh("tail -n +3 /proc/net/dev | cut -d: -f1; echo --; cat /sys/class/net/lo/flags")))
    devs, flags = out.split("--")
    assert devs.split() == ["lo"]
    assert int(flags.strip(), 16) & 0x1, "lo is not UP"


def test_join_existing_netns_by_path(run_in, host_process):
    holder = host_process(["unshare", "--net", "sleep", "1000"])
    wait_for(
        lambda: (
            os.path.exists(f"/proc/{holder.pid}/ns/net")
            and host_ns("network", holder.pid) != host_ns("network")
        ),
        what="the netns holder",
    )
    target = host_ns("network", holder.pid)
    kinds = ["pid", "ipc", "uts", "mount"]
    out = ok(
        run_in(
            sh("readlink /proc/self/ns/net"),
            mutate=set_namespaces(*kinds, network=f"/proc/{holder.pid}/ns/net"),
        )
    )
    assert out.strip() == target


def test_join_other_containers_pid_and_ipc_ns(rt, make_bundle, run_in):
    a = make_bundle(["sleep", "1000"])
    assert rt.create(a.id, a).returncode == 0
    assert rt.start(a.id).returncode == 0
    apid = rt.state_json(a.id)["pid"]
    out = ok(
        run_in(
            sh("readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; tr '\\0' ' ' < /proc/1/cmdline"),
            mutate=set_namespaces(
                "network", "uts", "mount", pid=f"/proc/{apid}/ns/pid", ipc=f"/proc/{apid}/ns/ipc"
            ),
        )
    )
    pidns, ipcns, cmdline = out.split("\n", 2)
    assert pidns == host_ns("pid", apid)
    assert ipcns == host_ns("ipc", apid)
    assert cmdline.split() == ["sleep", "1000"]


def test_namespace_duplicated_is_an_error(rt, make_bundle):
    b = make_bundle(["true"], mutate=add_namespaces({"type": "network"}))
    assert_failed_cleanly(rt, b, rt.create(b.id, b), "/linux/namespaces")


# ---- mount -----------------------------------------------------------------------------------------


def test_mount_ns_shows_only_configured_mounts(run_in):
    b_cfg = {}

    def grab(c):
        b_cfg.update(c)

    out = ok(run_in(sh("cut -d' ' -f5 /proc/self/mountinfo"), mutate=grab))
    allowed = [m["destination"] for m in b_cfg["mounts"]]
    exact = set(b_cfg["linux"]["maskedPaths"] + b_cfg["linux"]["readonlyPaths"] + ["/"])
    for mp in out.split():
        assert mp in exact or any(mp == d or mp.startswith(d.rstrip("/") + "/") for d in allowed), (
            f"unexpected mount point {mp} in the container"
        )


def test_mount_ns_does_not_leak_to_host(run_in, rootfs):
    with open("/proc/self/mountinfo") as f:
        before = f.read()
    ok(run_in(["true"]))
    with open("/proc/self/mountinfo") as f:
        assert [ln for ln in f.read().splitlines() if rootfs in ln] == [
            ln for ln in before.splitlines() if rootfs in ln
        ]


# ---- user ------------------------------------------------------------------------------------------


def test_user_ns_mappings(run_in):
    out = ok(
        run_in(
            sh("id -u; id -g; echo --; cat /proc/self/uid_map; echo --; cat /proc/self/gid_map"),
            mutate=userns,
        )
    )
    ids, uid_map, gid_map = out.split("--")
    assert ids.split() == ["0", "0"]
    assert uid_map.split() == ["0", "100000", "65536"]
    assert gid_map.split() == ["0", "100000", "65536"]


def test_user_ns_host_view_of_init(rt, make_bundle):
    b = make_bundle(["sleep", "1000"], mutate=userns)
    p = rt.create(b.id, b)
    assert p.returncode == 0, p.stderr
    assert rt.start(b.id).returncode == 0
    pid = rt.state_json(b.id)["pid"]
    with open(f"/proc/{pid}/status") as f:
        status = dict(ln.split(":", 1) for ln in f.read().splitlines())
    assert status["Uid"].split() == ["100000"] * 4
    assert status["Gid"].split() == ["100000"] * 4
    assert os.readlink(f"/proc/{pid}/ns/user") != host_ns("user")


def test_user_ns_uid_mapping_of_non_root(run_in):
    def mutate(c):
        userns(c)
        c["process"]["user"] = {"uid": 1000, "gid": 1000}

    out = ok(run_in(sh("id -u; id -g; grep ^Uid /proc/self/status"), mutate=mutate))
    assert out.split()[:2] == ["1000", "1000"]


# ---- cgroup ----------------------------------------------------------------------------------------


def test_cgroup_ns_root_is_container_cgroup(run_in):
    out = ok(run_in(sh("cat /proc/self/cgroup"), mutate=add_namespaces({"type": "cgroup"})))
    lines = out.split()
    assert lines and all(ln.endswith(":/") for ln in lines), out


def test_without_cgroup_ns_cgroup_path_is_visible(rt, make_bundle):
    # No cgroup namespace in the default config: the container's full cgroups path shows.
    b = make_bundle(sh("cat /proc/self/cgroup"))
    out = ok(rt.run(b.id, b))
    assert b.cgroups_path in out


# ---- time ------------------------------------------------------------------------------------------


@pytest.mark.runc_deviates(
    'runc 1.1.5 has no time namespace: \'namespace {"time" ""} does not exist\' (support came in runc 1.2)'
)
def test_time_ns_offsets(run_in):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("no time namespaces on this kernel")
    day = 86400

    def mutate(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {
            "boottime": {"secs": day, "nanosecs": 0},
            "monotonic": {"secs": day, "nanosecs": 0},
        }

    with open("/proc/uptime") as f:
        host_before = float(f.read().split()[0])
    out = ok(run_in(sh("cat /proc/uptime; readlink /proc/self/ns/time"), mutate=mutate))
    with open("/proc/uptime") as f:
        host_after = float(f.read().split()[0])
    uptime, _idle, nsid = out.split()
    assert host_before + day <= float(uptime) <= host_after + day + 1
    assert nsid != host_ns("time")
