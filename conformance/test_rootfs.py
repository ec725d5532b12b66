"""root, mounts, devices, maskedPaths/readonlyPaths, sysctl (config.md, config-linux.md)."""

import os
import subprocess

import pytest
from runtime import assert_failed_cleanly, ok, one_line, sh


def mounts(*entries):
    def mutate(c):
        c["mounts"].extend(entries)

    return mutate


def tmpfs(dest, *options):
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": list(options)}


def bind(src, dest, *options):
    return {"destination": dest, "type": "bind", "source": str(src), "options": list(options) or ["rbind"]}


def mountinfo_line(dest):
    """Shell: the /proc/self/mountinfo line of mount point `dest` (the last one mounted there)."""
    return f"awk '$5 == \"{dest}\"' /proc/self/mountinfo | tail -n 1"


class MountInfo:
    def __init__(self, line):
        fields = line.split()
        sep = fields.index("-")
        self.mount_point = fields[4]
        self.options = set(fields[5].split(","))
        self.optional = fields[6:sep]
        self.fstype = fields[sep + 1]
        self.super_options = set(fields[sep + 3].split(","))


def mountinfo(out):
    line = out.strip().splitlines()[-1] if out.strip() else ""
    assert line, "no such mount point in the container"
    return MountInfo(line)


@pytest.fixture
def hostdir(tmp_path):
    d = tmp_path / "hostdir"
    d.mkdir()
    (d / "file").write_text("from-host\n")
    return d


# ---- bind / rbind ------------------------------------------------------------------------------------


def test_bind_mount(run_in, hostdir):
    out = ok(run_in(sh("cat /tmp/h/file; echo new > /tmp/h/written"), mutate=mounts(bind(hostdir, "/tmp/h"))))
    assert out == "from-host\n"
    assert (hostdir / "written").read_text() == "new\n"


def test_bind_mount_relative_source_is_relative_to_bundle(rt, make_bundle):
    b = make_bundle(sh("cat /tmp/h/file"), mutate=mounts(bind("data", "/tmp/h")))
    os.mkdir(os.path.join(b.path, "data"))
    with open(os.path.join(b.path, "data", "file"), "w") as f:
        f.write("bundle-data\n")
    assert ok(rt.run(b.id, b)) == "bundle-data\n"


def test_bind_mount_ro(run_in, hostdir):
    out = ok(
        run_in(
            sh(f"cat /tmp/h/file; touch /tmp/h/new 2>/dev/null && echo WROTE; {mountinfo_line('/tmp/h')}"),
            mutate=mounts(bind(hostdir, "/tmp/h", "rbind", "ro")),
        )
    )
    first, rest = out.split("\n", 1)
    assert first == "from-host"
    assert "WROTE" not in rest
    assert "ro" in mountinfo(rest).options
    assert not (hostdir / "new").exists()


def test_bind_of_a_file(run_in, hostdir):
    out = ok(run_in(sh("cat /tmp/onefile"), mutate=mounts(bind(hostdir / "file", "/tmp/onefile", "bind"))))
    assert out == "from-host\n"


@pytest.mark.parametrize("kind,sees_submount", [("rbind", True), ("bind", False)])
def test_rbind_includes_submounts_bind_does_not(run_in, tmp_path, kind, sees_submount):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "conformance-sub", str(src / "sub")], check=True)
    try:
        (src / "sub" / "inner").write_text("inner\n")
        out = ok(
            run_in(
                sh("cat /tmp/s/sub/inner 2>/dev/null || echo MISSING"),
                mutate=mounts(bind(src, "/tmp/s", kind)),
            )
        )
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)
    assert out == ("inner\n" if sees_submount else "MISSING\n")


# ---- tmpfs and mount options ---------------------------------------------------------------------------


def test_tmpfs_size_and_mode(run_in):
    out = ok(
        run_in(
            sh(f"stat -c %a /tmp/t; df -k /tmp/t | tail -n 1; {mountinfo_line('/tmp/t')}"),
            mutate=mounts(tmpfs("/tmp/t", "size=1m", "mode=700")),
        )
    )
    mode, df, info = out.strip().split("\n")
    assert mode == "700"
    assert df.split()[1] == "1024"
    mi = mountinfo(info)
    assert mi.fstype == "tmpfs"
    assert {"size=1024k", "mode=700"} <= mi.super_options


def test_tmpfs_ro(run_in):
    out = ok(
        run_in(
            sh(f"touch /tmp/t/x 2>/dev/null && echo WROTE; {mountinfo_line('/tmp/t')}"),
            mutate=mounts(tmpfs("/tmp/t", "ro")),
        )
    )
    assert "WROTE" not in out
    assert "ro" in mountinfo(out).options


def test_nosuid_noexec_nodev(run_in):
    script = (
        f"{mountinfo_line('/tmp/t')}; cp /bin/busybox /tmp/t/true; "
        "/tmp/t/true 2>/dev/null && echo EXECUTED || echo NOEXEC"
    )
    out = ok(run_in(sh(script), mutate=mounts(tmpfs("/tmp/t", "nosuid", "noexec", "nodev"))))
    info, verdict = out.strip().split("\n")
    assert {"nosuid", "noexec", "nodev"} <= mountinfo(info).options
    assert verdict == "NOEXEC"


def test_exec_suid_dev_defaults(run_in):
    out = ok(
        run_in(
            sh(f"{mountinfo_line('/tmp/t')}; cp /bin/busybox /tmp/t/true; /tmp/t/true && echo EXECUTED"),
            mutate=mounts(tmpfs("/tmp/t")),
        )
    )
    info, verdict = out.strip().split("\n")
    assert not {"nosuid", "noexec", "nodev"} & mountinfo(info).options
    assert verdict == "EXECUTED"


@pytest.mark.parametrize("option", ["acl", "noacl"])
def test_acl_options_are_flags(run_in, option):
    """acl/noacl (MS_POSIXACL; not in config.md's table, but runc takes them): a flag, not a
    filesystem option tmpfs would refuse."""
    out = ok(run_in(sh(mountinfo_line("/tmp/a")), mutate=mounts(tmpfs("/tmp/a", option))))
    assert mountinfo(out).fstype == "tmpfs"


def test_mounts_in_listed_order(run_in):
    out = ok(
        run_in(
            sh("cut -d' ' -f5 /proc/self/mountinfo | grep '^/tmp/o'; ls /tmp/o"),
            mutate=mounts(tmpfs("/tmp/o"), tmpfs("/tmp/o/inner", "size=1m")),
        )
    )
    assert out.split() == ["/tmp/o", "/tmp/o/inner", "inner"]


# ---- special filesystems ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dest,fstypes",
    [
        ("/proc", {"proc"}),
        ("/sys", {"sysfs"}),
        ("/dev", {"tmpfs"}),
        ("/dev/pts", {"devpts"}),
        ("/dev/shm", {"tmpfs"}),
        ("/dev/mqueue", {"mqueue"}),
        ("/tmp", {"tmpfs"}),
    ],
)
def test_special_filesystem_types(run_in, dest, fstypes):
    assert mountinfo(ok(run_in(sh(mountinfo_line(dest))))).fstype in fstypes


def test_cgroup_mount(run_in):
    """type cgroup at /sys/fs/cgroup: cgroup2 there (v2), or per-controller cgroup mounts below (v1)."""
    out = ok(run_in(sh("awk '$5 ~ \"^/sys/fs/cgroup\" {print $5, $(NF-2)}' /proc/self/mountinfo")))
    assert {line.split()[-1] for line in out.strip().splitlines()} & {"cgroup", "cgroup2"}, out
    # The container's view is read-only, as configured.
    ro = ok(run_in(sh("mkdir /sys/fs/cgroup/x 2>/dev/null && echo WROTE; true")))
    assert "WROTE" not in ro


def test_the_cgroup_v1_tmpfs_is_nosuid_nodev_noexec_whatever_the_options(run_in):
    """On cgroup v1 the tmpfs holding the hierarchies is mounted nosuid, nodev and noexec even
    where the cgroup mount's options leave them out, as runc mounts it."""

    def mutate(c):
        for m in c["mounts"]:
            if m["destination"] == "/sys/fs/cgroup":
                m["options"] = ["ro"]

    mi = mountinfo(ok(run_in(sh(mountinfo_line("/sys/fs/cgroup")), mutate=mutate)))
    if mi.fstype != "tmpfs":
        pytest.skip("cgroup v2: one cgroup2 mount, no tmpfs")
    assert {"nosuid", "nodev", "noexec"} <= mi.options, mi.options


def test_devpts_options(run_in):
    out = ok(run_in(sh(mountinfo_line("/dev/pts") + "; ls -l /dev/pts/ptmx")))
    mi = mountinfo(out.splitlines()[0])
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= mi.super_options
    assert {"nosuid", "noexec"} <= mi.options


# ---- propagation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option,expect",
    [("shared", "shared:"), ("rshared", "shared:"), ("private", None), ("unbindable", "unbindable")],
)
def test_mount_propagation_option(run_in, option, expect):
    mi = mountinfo(ok(run_in(sh(mountinfo_line("/tmp/p")), mutate=mounts(tmpfs("/tmp/p", option)))))
    if expect is None:
        assert mi.optional == []
    else:
        assert any(o.startswith(expect) for o in mi.optional), mi.optional


def test_bind_rshared(run_in, hostdir):
    mi = mountinfo(
        ok(run_in(sh(mountinfo_line("/tmp/h")), mutate=mounts(bind(hostdir, "/tmp/h", "rbind", "rshared"))))
    )
    assert any(o.startswith("shared:") for o in mi.optional)


@pytest.mark.parametrize(
    "options,shown,not_shown",
    [
        (["rbind", "rnoatime"], "noatime", "relatime"),
        (["rbind", "rnoatime", "noatime"], "noatime", "relatime"),
        (["rbind", "rstrictatime"], None, "atime"),  # strictatime: neither noatime nor relatime
        (["rbind", "rnoatime", "rnodiratime"], "noatime", "relatime"),
    ],
)
def test_recursive_atime_options(run_in, hostdir, options, shown, not_shown):
    """config.md's recursive atime options take effect (ocirt dropped rnoatime and rstrictatime:
    the atime field they clear took the value they set with it)."""
    mi = mountinfo(ok(run_in(sh(mountinfo_line("/tmp/h")), mutate=mounts(bind(hostdir, "/tmp/h", *options)))))
    if shown:
        assert shown in mi.options, mi.options
    assert not any(o.endswith(not_shown) for o in mi.options), mi.options


@pytest.mark.parametrize("root", ["private", "rprivate", "slave", "rslave"])
def test_a_mounts_own_propagation_outlasts_the_rootfs_propagation(run_in, hostdir, root):
    """A mount's "rshared" stays whatever rootfsPropagation makes of the root (ocirt applied
    that last and recursively: the mount came out private or a slave)."""
    mi = mountinfo(
        ok(
            run_in(
                sh(mountinfo_line("/tmp/h")),
                mutate=mounts(bind(hostdir, "/tmp/h", "rbind", "rshared")),
                linux={"rootfsPropagation": root},
            )
        )
    )
    assert any(o.startswith("shared:") for o in mi.optional), mi.optional


@pytest.mark.runc_deviates("runc 1.1.5 leaves the container's / private whatever rootfsPropagation says")
def test_rootfs_propagation_shared(run_in):
    mi = mountinfo(ok(run_in(sh(mountinfo_line("/")), linux={"rootfsPropagation": "shared"})))
    assert any(o.startswith("shared:") for o in mi.optional), mi.optional


@pytest.mark.runc_deviates(
    "runc 1.1.5 fails: 'mount ROOTFS:ROOTFS, flags: 0x5000: invalid argument' "
    "(it bind-mounts the rootfs after making the parent unbindable)"
)
def test_rootfs_propagation_unbindable(run_in):
    mi = mountinfo(ok(run_in(sh(mountinfo_line("/")), linux={"rootfsPropagation": "unbindable"})))
    assert "unbindable" in mi.optional


@pytest.mark.parametrize("value", ["private", "slave", "rprivate", "rslave"])
def test_rootfs_propagation_accepted(run_in, value):
    ok(run_in(["true"], linux={"rootfsPropagation": value}))


def test_container_mounts_do_not_propagate_to_host(run_in, hostdir):
    """Whatever the propagation, a mount made inside the container never shows on the host: in
    the host's mount table, nothing at or below the directory the container bound rshared
    (the table as a whole changes with other tests' mounts, running at the same time)."""

    def ours():
        with open("/proc/self/mountinfo") as f:
            return [line for line in f if str(hostdir) in line]

    before = ours()
    ok(
        run_in(
            ["true"],
            mutate=mounts(bind(hostdir, "/tmp/h", "rbind", "rshared"), tmpfs("/tmp/h/sub")),
            linux={"rootfsPropagation": "slave"},
        )
    )
    assert ours() == before


# ---- root ------------------------------------------------------------------------------------------------


def test_root_readonly(run_in):
    out = ok(run_in(sh(f"touch /newfile 2>/dev/null && echo WROTE; {mountinfo_line('/')}")))
    assert "WROTE" not in out
    assert "ro" in mountinfo(out).options


def test_root_writable(run_in, tmp_path):
    p = run_in(
        sh(f"echo hello > /newfile && {mountinfo_line('/')}"), rootfs_copy=True, root={"readonly": False}
    )
    mi = mountinfo(ok(p))
    assert "rw" in mi.options
    copies = list(tmp_path.glob("bundle-*/rootfs/newfile"))
    assert [c.read_text() for c in copies] == ["hello\n"]


def test_root_is_the_configured_directory(rt, make_bundle):
    b = make_bundle(sh("cat /conformance-marker"), rootfs_copy=True)
    with open(os.path.join(b.rootfs, "conformance-marker"), "w") as f:
        f.write(b.id + "\n")
    assert ok(rt.run(b.id, b)) == b.id + "\n"


def test_relative_root_path_is_relative_to_bundle(rt, make_bundle):
    b = make_bundle(sh("cat /conformance-marker"), rootfs_copy=True)
    with open(os.path.join(b.rootfs, "conformance-marker"), "w") as f:
        f.write("relative\n")
    b.config["root"]["path"] = "rootfs"
    b.save()
    assert ok(rt.run(b.id, b)) == "relative\n"


# ---- masked and readonly paths ---------------------------------------------------------------------------


def test_masked_paths_default(run_in):
    files = [
        f for f in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug") if os.path.exists(f)
    ]
    dirs = [d for d in ("/sys/firmware", "/proc/acpi", "/proc/scsi") if os.path.isdir(d)]
    assert files and dirs, "nothing to mask on this host"
    script = "; ".join([f"cat {f} | wc -c" for f in files] + [f"ls -A {d} | wc -l" for d in dirs])
    assert ok(run_in(sh(script))).split() == ["0"] * (len(files) + len(dirs))


def test_masked_path_custom(run_in, hostdir):
    (hostdir / "secretdir").mkdir()
    (hostdir / "secretdir" / "x").write_text("secret\n")

    def mutate(c):
        c["mounts"].append(bind(hostdir, "/tmp/h"))
        c["linux"]["maskedPaths"] += ["/tmp/h/file", "/tmp/h/secretdir", "/tmp/h/does-not-exist"]

    out = ok(run_in(sh("cat /tmp/h/file | wc -c; ls -A /tmp/h/secretdir | wc -l"), mutate=mutate))
    assert out.split() == ["0", "0"]
    assert (hostdir / "file").read_text() == "from-host\n"


def test_readonly_paths_default(run_in):
    mi = mountinfo(ok(run_in(sh(mountinfo_line("/proc/sys")))))
    assert "ro" in mi.options


def test_masked_paths_go_over_the_read_only_ones(run_in):
    """runc's order: read-only paths first, then the masks, which bind /dev/null from a /dev
    that is read-only by then (ocirt masked first: /proc/keys stayed a writable /dev/null)."""
    mi = mountinfo(
        ok(
            run_in(
                sh(mountinfo_line("/proc/keys")),
                mutate=lambda c: c["linux"].__setitem__("readonlyPaths", ["/dev"]),
            )
        )
    )
    assert "ro" in mi.options, mi.options


def test_readonly_path_custom(run_in, hostdir):
    def mutate(c):
        c["mounts"].append(bind(hostdir, "/tmp/h", "rbind", "rw"))
        c["linux"]["readonlyPaths"] += ["/tmp/h", "/tmp/does-not-exist"]

    out = ok(run_in(sh("echo x > /tmp/h/file 2>/dev/null && echo WROTE; cat /tmp/h/file"), mutate=mutate))
    assert out == "from-host\n"
    assert (hostdir / "file").read_text() == "from-host\n"


@pytest.mark.runc_deviates(
    "runc 1.1.5 stacks a bind on / that every exec'd process gets as its root: writable unless "
    "root.readonly, and without the masked paths"
)
@pytest.mark.parametrize("readonly_root", [True, False])
def test_readonly_path_of_the_root_holds_for_exec_too(rt, started, readonly_root):
    """readonlyPaths ["/"]: the root is read-only for the init and for a process that joins the
    container later (ocirt stacked a bind on "/": the init kept the read-only mount below it,
    `exec` got the writable one on top, without the masks and read-only paths under it)."""
    b = started(
        rootfs_copy=True,
        root={"readonly": readonly_root},
        mutate=lambda c: c["linux"].__setitem__("readonlyPaths", ["/"]),
    )
    p = rt(
        "exec",
        b.id,
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo WROTE; grep -c ' /proc/keys ' /proc/self/mountinfo",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1"], p.stdout  # not written, and /proc/keys masked
    assert not os.path.exists(os.path.join(b.rootfs, "x"))


# ---- devices ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,major,minor",
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)],
)
def test_default_device(run_in, name, major, minor):
    out = ok(run_in(sh(f"stat -c '%F %t %T' /dev/{name}")))
    assert out.strip() == f"character special file {major:x} {minor:x}"


@pytest.mark.parametrize(
    "name,target",
    [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ],
)
def test_default_dev_symlink(run_in, name, target):
    assert ok(run_in(sh(f"readlink /dev/{name}"))).strip() == target


def test_default_devices_work(run_in):
    script = (
        "echo x > /dev/null && echo null-ok; head -c 5 /dev/zero | wc -c; "
        "head -c 7 /dev/urandom | wc -c; echo x 2>/dev/null > /dev/full || echo full-enospc"
    )
    assert ok(run_in(sh(script))).split() == ["null-ok", "5", "7", "full-enospc"]


def test_default_devices_without_a_dev_mount(run_in, tmp_path):
    """config-linux.md: the runtime supplies the default devices whatever /dev is: with no mount
    on /dev they are made in the rootfs's own /dev (runc does the same), and the masked files
    get their /dev/null."""
    if os.statvfs(tmp_path).f_flag & os.ST_NODEV:  # (the v2 VM's /tmp): no node opens there
        pytest.skip("the rootfs's copy would be on a nodev filesystem")
    script = "stat -c '%F %t %T' /dev/null /dev/zero /dev/tty; cat /proc/keys 2>&1 | wc -c"

    def no_dev(c):
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/dev"]
        c["root"]["readonly"] = False

    out = ok(run_in(sh(script), rootfs_copy=True, mutate=no_dev)).split("\n")
    assert out[:3] == [
        "character special file 1 3",
        "character special file 1 5",
        "character special file 5 0",
    ], out
    assert out[3].strip() == "0", out  # /proc/keys masked: reads as empty


def test_linux_devices_created(run_in):
    devices = [
        {
            "path": "/dev/conformance-c",
            "type": "c",
            "major": 1,
            "minor": 5,
            "fileMode": 0o640,
            "uid": 1000,
            "gid": 1001,
        },
        {
            "path": "/dev/conformance-b",
            "type": "b",
            "major": 7,
            "minor": 200,
            "fileMode": 0o600,
            "uid": 0,
            "gid": 0,
        },
    ]
    out = ok(
        run_in(
            sh("stat -c '%F %t %T %a %u %g' /dev/conformance-c /dev/conformance-b"),
            linux={"devices": devices},
        )
    )
    assert out.splitlines() == ["character special file 1 5 640 1000 1001", "block special file 7 c8 600 0 0"]


def test_linux_devices_usable_when_allowed(run_in):
    def mutate(c):
        c["linux"]["devices"] = [
            {"path": "/dev/conformance-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666}
        ]
        c["linux"]["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
        )

    assert ok(run_in(sh("head -c 3 /dev/conformance-zero | wc -c"), mutate=mutate)).strip() == "3"


# ---- sysctl ----------------------------------------------------------------------------------------------


def test_sysctl_in_new_netns(run_in):
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host = f.read()
    target = "0" if host.strip() == "1" else "1"
    out = ok(
        run_in(sh("cat /proc/sys/net/ipv4/ip_forward"), linux={"sysctl": {"net.ipv4.ip_forward": target}})
    )
    assert out.strip() == target
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host


def test_sysctl_ipc_namespaced(run_in):
    with open("/proc/sys/kernel/msgmax") as f:
        host = f.read()
    out = ok(run_in(sh("cat /proc/sys/kernel/msgmax"), linux={"sysctl": {"kernel.msgmax": "12345"}}))
    assert out.strip() == "12345"
    with open("/proc/sys/kernel/msgmax") as f:
        assert f.read() == host


# ---- symlinks in the rootfs must not lead a mount out of it ------------------------------------------------


@pytest.mark.parametrize("target_in_rootfs", [True, False], ids=["target-exists", "dangling"])
@pytest.mark.parametrize("style", ["absolute", "relative"])
def test_mount_destination_symlink_stays_in_rootfs(rt, make_bundle, tmp_path, style, target_in_rootfs):
    """A mount destination that is a symlink pointing outside the rootfs is resolved inside the rootfs
    (as if the rootfs were /): nothing is created or mounted at the host path. A dangling target is
    created inside the rootfs, as for any missing mount point."""
    host_target = tmp_path / "escape-target"  # must never appear on the host
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "file").write_text("payload\n")
    b = make_bundle(
        sh(f"cat {host_target}/file; cut -d' ' -f5 /proc/self/mountinfo | grep -x '{host_target}'"),
        rootfs_copy=True,
        tmp=False,
        mutate=mounts(bind(payload, "/mnt/link")),
    )
    in_rootfs = os.path.join(b.rootfs, str(host_target).lstrip("/"))
    if target_in_rootfs:
        os.makedirs(in_rootfs)
    os.makedirs(os.path.join(b.rootfs, "mnt"))
    if style == "absolute":
        link = str(host_target)
    else:
        link = "../" * 20 + str(host_target).lstrip("/")
    os.symlink(link, os.path.join(b.rootfs, "mnt", "link"))
    p = rt.run(b.id, b)
    assert not os.path.lexists(host_target), "the runtime followed the symlink out of the rootfs"
    assert ok(p).split() == ["payload", str(host_target)]
    assert os.path.isdir(in_rootfs)


def test_mount_destination_symlink_to_etc(rt, make_bundle):
    """/mnt/x -> /etc: the tmpfs covers the container's /etc, not the host's."""
    b = make_bundle(sh("ls -A /etc | wc -l"), rootfs_copy=True, mutate=mounts(tmpfs("/mnt/x")))
    os.makedirs(os.path.join(b.rootfs, "mnt"))
    os.symlink("/etc", os.path.join(b.rootfs, "mnt", "x"))
    assert ok(rt.run(b.id, b)).strip() == "0"
    assert os.path.exists("/etc/passwd")


def test_tmpcopyup_starts_with_the_covered_contents(run_in):
    """runc's `tmpcopyup` (podman's --tmpfs asks for it): the tmpfs over /etc starts with a copy
    of what /etc had (contents, modes, owners); writes land in the tmpfs, not in the rootfs."""
    tmpfs = {
        "destination": "/etc",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=755", "tmpcopyup"],
    }
    out = ok(
        run_in(
            sh(
                "grep -c root /etc/passwd; stat -c '%a %u' /etc/passwd; "
                "grep ' /etc ' /proc/mounts | cut -d' ' -f3; "
                "echo x > /etc/new && echo wrote"
            ),
            mutate=mounts(tmpfs),
        )
    )
    count, mode_owner, fstype, wrote = out.split("\n")[:4]
    assert int(count) >= 1
    assert mode_owner == "644 0"
    assert fstype == "tmpfs"
    assert wrote == "wrote"  # the shared rootfs stays unchanged (checked at teardown)


@pytest.mark.parametrize("dest", ["/proc/cpuinfo", "/proc/uptime", "/proc/sys/kernel/ns_last_pid"])
def test_lxcfs_files_may_be_bound_into_proc(run_in, hostdir, dest):
    out = ok(run_in(sh(f"cat {dest}"), mutate=mounts(bind(hostdir / "file", dest, "bind"))))
    assert out == "from-host\n"


@pytest.mark.parametrize(
    "dest,source",
    [
        ("/proc/self/environ", "file"),  # through the symlink: /proc/1/environ
        ("/proc/version", "file"),
        ("/proc/net/dev", "file"),  # /proc/net is a symlink to self/net: not lxcfs's path then
        ("/proc", "."),  # a directory that is no procfs, on /proc itself
    ],
)
def test_other_binds_into_proc_are_refused(rt, make_bundle, hostdir, dest, source):
    """runc's rule (CVE-2019-16884: a mount over /proc/self/attr hid the LSM label files): in the
    container's /proc only the files lxcfs stands in for, on /proc itself only a procfs."""
    b = make_bundle(["true"], mutate=mounts(bind(hostdir / source, dest, "rbind")))
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer=f"/mounts/{len(b.config['mounts']) - 1}/destination")
    assert "cannot be mounted because it is" in one_line(p.stderr)


def test_the_hosts_procfs_may_be_bound_on_proc(run_in):
    assert (
        ok(run_in(sh("test -e /proc/self/status && echo yes"), mutate=mounts(bind("/proc", "/proc"))))
        == "yes\n"
    )


def test_mount_destination_is_cleaned_lexically(run_in, hostdir):
    """runc cleans a destination as Go's filepath.Clean does: "/no-such-dir/../tmp/h" is
    /tmp/h, whether or not /no-such-dir exists (ocirt failed: "no such file or directory")."""
    out = ok(run_in(sh("cat /tmp/h/file"), mutate=mounts(bind(hostdir, "/no-such-dir/../tmp/h"))))
    assert out == "from-host\n"


@pytest.mark.parametrize("dest", ["/.", "//", "/proc/../.."])
def test_mount_over_the_root_itself_fails_create(rt, make_bundle, dest):
    """A destination that resolves to the container's root would cover it (runc mounts it, then
    fails without /proc): create fails, naming the mount, and leaves nothing behind."""
    b = make_bundle(
        ["true"],
        mutate=lambda c: c["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs"}),
    )
    index = len(b.config["mounts"]) - 1
    assert_failed_cleanly(rt, b, rt.create(b.id, b), pointer=f"/mounts/{index}/destination")


def test_masked_path_that_is_a_symlink_to_a_directory(rt, make_bundle):
    """A masked path that is a symlink to a directory in the rootfs: the directory is masked
    (runc binds /dev/null, gets ENOTDIR, and mounts a tmpfs instead)."""

    def mutate(c):
        c["linux"]["maskedPaths"] = ["/masked-link"]

    b = make_bundle(sh("ls -A /masked-dir; echo end"), rootfs_copy=True, mutate=mutate)
    os.makedirs(os.path.join(b.rootfs, "masked-dir"))
    with open(os.path.join(b.rootfs, "masked-dir", "secret"), "w") as f:
        f.write("secret\n")
    os.symlink("/masked-dir", os.path.join(b.rootfs, "masked-link"))
    assert ok(rt.run(b.id, b)).split() == ["end"]
