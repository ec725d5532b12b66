#!/usr/bin/env python3
"""Reproduce the paper's CPU-isolation experiments with OCI containers.

Table 3: two containers running busy loops, CPU given by cpu.shares and cpuset.cpus; each
container's CPU use is read from its cgroup (v1 cpuacct.usage, v2 cpu.stat usage_usec) and shown
as percent of one CPU over the interval, like top.

Table 2 (optional, --table2): instead of apache + ab, a fixed amount of CPU-bound work (parallel
busybox sh counting loops) inside one container, given 1 or 2 CPUs through cpuset; throughput is
work per wall-clock second.

Run as root:
    python3 experiments/cpu_shares.py [--runtime PATH] [--seconds 5] [--table2] [--json FILE]

Standard library only.  Everything it makes (containers, state dir, bundles, the
/ocirt-paper/<run-id> cgroups) is removed on exit, also on Ctrl-C or SIGTERM.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MKROOTFS = os.path.join(REPO, "bundles", "mkrootfs.sh")
SPEC = os.path.join(REPO, "bundles", "runc-spec.json")
DEFAULT_RUNTIME = os.path.join(REPO, ".venv", "bin", "ocirt")
CGROUP_TOP = "ocirt-paper"

BUSY = ["sh", "-c", "while :; do :; done"]
IDLE = ["sleep", "100000"]

# (case, setup text, cpus, shares c1, shares c2, c1 busy, c2 busy, paper c1 %, paper c2 %)
TABLE3 = [
    (1, "share 1 CPU, 50%/50%, only container 1 busy", "0", 1024, 1024, True, False, 98, 1),
    (2, "share 1 CPU, 50%/50%, both busy", "0", 1024, 1024, True, True, 48, 49),
    (3, "share 1 CPU, 80%/20%, both busy", "0", 4096, 1024, True, True, 77, 19),
    (4, "2 CPUs, 50%/50%, both busy", "0-1", 1024, 1024, True, True, 97, 98),
]

PAPER_TABLE2 = {1: 543.24, 2: 722.21, 3: 841.45, 4: 878.12}


class Terminated(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Terminated()


# ---------------------------------------------------------------- cgroup accounting


def cgroup_mounts():
    """[(fstype, mountpoint, super_options)] of cgroup/cgroup2 mounts from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ", 1)
            mnt = left.split()[4]
            fields = right.split()
            if fields[0] in ("cgroup", "cgroup2"):
                out.append((fields[0], mnt, fields[2].split(",") if len(fields) > 2 else []))
    return out


class Accounting:
    """Reads a cgroup's cumulative CPU time (ns), v1 cpuacct or v2 cpu.stat."""

    def __init__(self):
        mounts = cgroup_mounts()
        self.v1_roots = [m for t, m, _ in mounts if t == "cgroup"]
        acct = [m for t, m, opts in mounts if t == "cgroup" and "cpuacct" in opts]
        v2 = [m for t, m, _ in mounts if t == "cgroup2"]
        if acct:
            self.kind, self.root = "v1", acct[0]
        elif v2:
            self.kind, self.root = "v2", v2[0]
        else:
            raise SystemExit("no cpuacct (v1) or cgroup2 mount found in /proc/self/mountinfo")
        self.hybrid = bool(acct and v2)

    def describe(self):
        if self.kind == "v1":
            return "cgroup v1%s (cpuacct.usage under %s)" % (" hybrid" if self.hybrid else "", self.root)
        return "cgroup v2 (cpu.stat usage_usec under %s)" % self.root

    def usage_ns(self, cgpath):
        d = os.path.join(self.root, cgpath.lstrip("/"))
        if self.kind == "v1":
            with open(os.path.join(d, "cpuacct.usage")) as f:
                return int(f.read())
        with open(os.path.join(d, "cpu.stat")) as f:
            for line in f:
                k, v = line.split()
                if k == "usage_usec":
                    return int(v) * 1000
        raise RuntimeError("no usage_usec in %s/cpu.stat" % d)

    def all_roots(self):
        """Every hierarchy root a runtime may have made our cgroups in."""
        roots = list(self.v1_roots)
        roots += [m for t, m, _ in cgroup_mounts() if t == "cgroup2"]
        return roots


# ---------------------------------------------------------------- the experiment harness


class Harness:
    def __init__(self, runtime, acct):
        self.runtime = runtime
        self.acct = acct
        self.run_id = "r%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])
        self.tmp = tempfile.mkdtemp(prefix="ocirt-paper-")
        self.state_root = os.path.join(self.tmp, "state")
        self.rootfs = os.path.join(self.tmp, "rootfs")
        self.live = []  # container ids not yet deleted
        with open(SPEC) as f:
            self.spec = json.load(f)

    def cgpath(self, name):
        return "/%s/%s/%s" % (CGROUP_TOP, self.run_id, name)

    def rt(self, *args, check=True, timeout=60, stdout=subprocess.DEVNULL):
        return run_runtime(
            [self.runtime, "--root", self.state_root] + list(args),
            self.tmp,
            check=check,
            timeout=timeout,
            stdout=stdout,
        )

    def build_rootfs(self):
        subprocess.run(["sh", MKROOTFS, self.rootfs], check=True)

    def bundle(self, name, args, cpus, shares):
        b = os.path.join(self.tmp, "bundles", name)
        os.makedirs(b, exist_ok=True)
        spec = json.loads(json.dumps(self.spec))
        spec["process"]["terminal"] = False
        spec["process"]["args"] = args
        spec["root"] = {"path": self.rootfs, "readonly": True}
        spec["hostname"] = name
        linux = spec.setdefault("linux", {})
        linux["cgroupsPath"] = self.cgpath(name)
        res = linux.setdefault("resources", {})
        res["cpu"] = {"shares": shares, "cpus": cpus, "mems": "0"}
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(spec, f, indent=1)
        return b

    def cid(self, name):
        return "paper-%s-%s" % (self.run_id, name)

    def start(self, name, args, cpus, shares):
        b = self.bundle(name, args, cpus, shares)
        cid = self.cid(name)
        self.live.append(cid)
        self.rt("create", "--bundle", b, cid)
        self.rt("start", cid)
        return cid

    def delete(self, cid):
        self.rt("delete", "--force", cid, check=False)
        if cid in self.live:
            self.live.remove(cid)

    # -- Table 3
    def table3_case(self, case, seconds, warmup):
        n, setup, cpus, sh1, sh2, busy1, busy2, p1, p2 = case
        names = ["t3c%d-c1" % n, "t3c%d-c2" % n]
        cids = []
        try:
            cids.append(self.start(names[0], BUSY if busy1 else IDLE, cpus, sh1))
            cids.append(self.start(names[1], BUSY if busy2 else IDLE, cpus, sh2))
            time.sleep(warmup)
            t0 = time.monotonic_ns()
            h0 = host_busy_ns()
            u0 = [self.acct.usage_ns(self.cgpath(x)) for x in names]
            time.sleep(seconds)
            u1 = [self.acct.usage_ns(self.cgpath(x)) for x in names]
            h1 = host_busy_ns()
            t1 = time.monotonic_ns()
        finally:
            for cid in cids:
                self.delete(cid)
        pct = [100.0 * (b - a) / (t1 - t0) for a, b in zip(u0, u1)]
        other = 100.0 * (h1 - h0) / (t1 - t0) - sum(pct)
        return {
            "case": n,
            "setup": setup,
            "cpus": cpus,
            "shares": [sh1, sh2],
            "busy": [busy1, busy2],
            "measured": [round(x, 1) for x in pct],
            "other_load": round(max(other, 0.0), 1),
            "paper": [p1, p2],
            "seconds": round((t1 - t0) / 1e9, 2),
        }

    # -- Table 2 analogue
    def table2_run(self, cpus, workers, iters):
        name = "t2-cpus%s-w%d" % (cpus.replace("-", "_"), workers)
        loop = "i=0; while [ $i -lt %d ]; do i=$((i+1)); done" % iters
        # timed inside the container from /proc/uptime (10 ms resolution), so runtime start-up
        # and polling latency are not counted; the two stamps go to the container's stdout
        script = (
            "read a _ </proc/uptime; for w in $(seq %d); do sh -c '%s' & done; wait; "
            "read b _ </proc/uptime; echo $a $b" % (workers, loop)
        )
        b = self.bundle(name, ["sh", "-c", script], cpus, 1024)
        cid = self.cid(name)
        self.live.append(cid)
        out = os.path.join(self.tmp, name + ".out")
        try:
            with open(out, "w") as f:
                self.rt("create", "--bundle", b, cid, stdout=f)
            self.rt("start", cid)
            # wait for the container's init to exit (state "stopped")
            while True:
                p = subprocess.run(
                    [self.runtime, "--root", self.state_root, "state", cid],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                if p.returncode != 0 or json.loads(p.stdout or b"{}").get("status") == "stopped":
                    break
                time.sleep(0.05)
            with open(out) as f:
                a, b = f.read().split()
            wall = float(b) - float(a)
            cpu_s = self.acct.usage_ns(self.cgpath(name)) / 1e9
        finally:
            self.delete(cid)
        total = workers * iters
        return {
            "cpus": cpus,
            "ncpus": len(expand_cpus(cpus)),
            "workers": workers,
            "iterations_total": total,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu_s, 3),
            "throughput_kiter_s": round(total / wall / 1000, 1),
        }

    # -- cleanup
    def cleanup(self):
        for cid in list(self.live):
            self.delete(cid)
        remove_run_cgroups(self.acct, CGROUP_TOP, self.run_id)
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_runtime(cmd, tmp, check=True, timeout=60, stdout=subprocess.DEVNULL):
    """One runtime command. The container inherits the runtime's stdio (terminal: false), so
    stderr goes to a file in tmp: a pipe would stay open for as long as the container lives."""
    with tempfile.TemporaryFile(dir=tmp) as err:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, timeout=timeout)
        if check and p.returncode != 0:
            err.seek(0)
            raise RuntimeError(
                "%s failed (%d): %s"
                % (" ".join(cmd), p.returncode, err.read().decode(errors="replace").strip())
            )
    return p


def remove_run_cgroups(acct, top_name, run_id):
    """Remove the cgroup directories of one run (<top>/<run id>/...), deepest first, in every
    hierarchy; then <top> itself if no other run uses it."""
    for root in acct.all_roots():
        top = os.path.join(root, top_name)
        run = os.path.join(top, run_id)
        if os.path.isdir(run):
            for dirpath, _, _ in sorted(os.walk(run), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError as e:
                    print("warning: could not remove cgroup %s: %s" % (dirpath, e), file=sys.stderr)
        try:
            os.rmdir(top)  # only succeeds when no other run is using it
        except OSError:
            pass


def host_busy_ns():
    """CPU time (ns, all CPUs) the host spent not idle, from /proc/stat."""
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy * 1_000_000_000 // hz


def wait_idle(limit_s, threshold=15.0):
    """Wait (up to limit_s) until other load on the host is below threshold % of one CPU."""
    deadline = time.monotonic() + limit_s
    while True:
        b0, t0 = host_busy_ns(), time.monotonic_ns()
        time.sleep(1.0)
        pct = 100.0 * (host_busy_ns() - b0) / (time.monotonic_ns() - t0)
        if pct < threshold or time.monotonic() >= deadline:
            if pct >= threshold:
                print("warning: host still %.0f%% busy before the run" % pct, file=sys.stderr)
            return round(pct, 1)
        time.sleep(2.0)


def expand_cpus(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def print_table3(rows, runtime, acct_desc):
    print()
    print("Table 3 - two busy-loop containers, CPU use per container (%% of one CPU)  runtime: %s" % runtime)
    print("accounting: %s" % acct_desc)
    hdr = (
        "| case | setup | shares | cpus | c1 measured | c2 measured | c1:c2 split | c1 paper | c2 paper "
        "| other host load |"
    )
    print(hdr)
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        m1, m2 = r["measured"]
        split = "%.0f:%.0f" % (100 * m1 / (m1 + m2), 100 * m2 / (m1 + m2)) if m1 + m2 > 0 else "-"
        print(
            "| %d | %s | %d/%d | %s | %.1f | %.1f | %s | %d | %d | %.1f |"
            % (
                r["case"],
                r["setup"],
                r["shares"][0],
                r["shares"][1],
                r["cpus"],
                m1,
                m2,
                split,
                r["paper"][0],
                r["paper"][1],
                r["other_load"],
            )
        )


def print_table2(rows):
    print()
    print("Table 2 analogue - fixed CPU-bound work in one container, CPUs given by cpuset")
    print("(this machine has %d CPUs; the paper went up to 4 with apache + ab)" % os.cpu_count())
    print(
        "| CPUs | workers | total iterations | wall s | container CPU s | kiter/s | speedup | paper req/s | paper speedup |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = rows[0]["throughput_kiter_s"] if rows else 1
    for r in rows:
        paper = PAPER_TABLE2.get(r["ncpus"])
        print(
            "| %d | %d | %d | %.2f | %.2f | %.1f | %.2f | %s | %s |"
            % (
                r["ncpus"],
                r["workers"],
                r["iterations_total"],
                r["wall_s"],
                r["cpu_s"],
                r["throughput_kiter_s"],
                r["throughput_kiter_s"] / base,
                paper if paper else "-",
                "%.2f" % (paper / PAPER_TABLE2[1]) if paper else "-",
            )
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtime", default=DEFAULT_RUNTIME, help="OCI runtime binary (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement interval per case")
    ap.add_argument("--warmup", type=float, default=0.5, help="settle time before measuring")
    ap.add_argument("--cases", default="1,2,3,4", help="Table 3 cases to run")
    ap.add_argument("--table2", action="store_true", help="also run the Table 2 analogue")
    ap.add_argument("--workers", type=int, default=4, help="Table 2: parallel loops")
    ap.add_argument("--iters", type=int, default=1000000, help="Table 2: iterations per loop")
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        metavar="S",
        help="before each run wait up to S seconds for the host to be idle (0: don't)",
    )
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    a = ap.parse_args()

    if os.geteuid() != 0:
        raise SystemExit("must run as root")
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)

    acct = Accounting()
    h = Harness(os.path.abspath(a.runtime) if os.sep in a.runtime else a.runtime, acct)
    ok = True
    result = {
        "runtime": a.runtime,
        "accounting": acct.describe(),
        "ncpus": os.cpu_count(),
        "seconds": a.seconds,
        "run_id": h.run_id,
        "table3": [],
        "table2": [],
    }
    try:
        h.build_rootfs()
        wanted = {int(x) for x in a.cases.split(",") if x}
        for case in TABLE3:
            if case[0] in wanted:
                if a.wait_idle > 0:
                    wait_idle(a.wait_idle)
                r = h.table3_case(case, a.seconds, a.warmup)
                print(
                    "case %d: c1 %.1f%%  c2 %.1f%%" % (r["case"], r["measured"][0], r["measured"][1]),
                    flush=True,
                )
                result["table3"].append(r)
        if a.table2:
            for cpus in ("0", "0-1"):
                if a.wait_idle > 0:
                    wait_idle(a.wait_idle)
                r = h.table2_run(cpus, a.workers, a.iters)
                print("table2 cpus=%s: %.2fs wall" % (cpus, r["wall_s"]), flush=True)
                result["table2"].append(r)
    except (KeyboardInterrupt, Terminated):
        print("\ninterrupted, cleaning up", file=sys.stderr)
        ok = False
    finally:
        # cleanup must not be cut short by a second signal
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            h.cleanup()
        finally:
            signal.signal(signal.SIGINT, old)

    if result["table3"]:
        print_table3(result["table3"], a.runtime, acct.describe())
        print(
            "other host load = CPU time the whole host used during the interval (/proc/stat) minus\n"
            "the two containers', in % of one CPU; above a few % the numbers are disturbed."
        )
    if result["table2"]:
        print_table2(result["table2"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if ok else 130


if __name__ == "__main__":
    sys.exit(main())
