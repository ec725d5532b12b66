#!/usr/bin/env python3
"""The paper's Table 2 over the network: an HTTP server in a container given 1 or 2 CPUs by cpuset,
loaded from the host through a veth pair; requests/s per CPU setting, per runtime.

The server is busybox httpd (one process forked per connection, like apache's prefork) serving
a small page from a tmpfs.  The load comes from ApacheBench `ab` when it is installed
(`apt-get install -y apache2-utils`; this script installs nothing), else from a small Python
load generator (threads, fixed concurrency, fixed duration).  Traffic goes only to the
container's address on a private veth link (198.18.X.0/24, X random per network).

Each runtime gets its network one of two ways (chosen per runtime, see --runtime):
  netdevices  the runtime makes the container's network namespace and moves the container end
              of the veth into it through the OCI config field linux.netDevices
              (ocirt supports it; runc 1.1.5 does not);
  netns       this script makes a named network namespace (pyroute2.netns, under
              /var/run/netns), moves the container end into it and configures it; the
              container joins it through linux.namespaces [{"type": "network", "path": ...}].

The runs are interleaved (round 1: every runtime x every CPU setting, then round 2, ...) so that
a slow drift of the host's load does not favour one configuration; the table gives the median
of the rounds.  Each run gets a fresh container and a fresh network.

Run as root, with the project's venv (pyroute2):
    .venv/bin/python experiments/http_cpus.py [--runtime PATH[@netdevices|@netns] ...]
        [--seconds 10] [--rounds 3] [--concurrency 16] [--json FILE]

Everything it makes (containers, veth pairs, network namespaces, the /ocirt-http/<run-id>
cgroups, the temp dir with rootfs, bundles and state) is removed on exit, on error, on Ctrl-C,
SIGTERM or SIGHUP.
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cpu_shares import (
    PAPER_TABLE2,
    Accounting,
    expand_cpus,  # noqa: E402
    remove_run_cgroups,
    run_runtime,
    wait_idle,
)

REPO = os.path.dirname(HERE)
MKROOTFS = os.path.join(REPO, "bundles", "mkrootfs.sh")
SPEC = os.path.join(REPO, "bundles", "runc-spec.json")
OCIRT = os.path.join(REPO, ".venv", "bin", "ocirt")
RUNC = "/usr/sbin/runc"
CGROUP_TOP = "ocirt-http"
NETNS_DIR = "/var/run/netns"
PORT = 8080


class Terminated(Exception):
    pass


MAIN_PID = os.getpid()


def _on_signal(signum, frame):
    # pyroute2 forks helpers (netns.create) that inherit this handler and are stopped with
    # SIGTERM: they must just die, not run the main program's cleanup.
    if os.getpid() != MAIN_PID:
        os._exit(128 + signum)
    raise Terminated()


# ---------------------------------------------------------------- host CPU accounting


def proc_stat():
    """{"cpu": [...], "cpu0": [...], ...} jiffies from /proc/stat:
    user nice system idle iowait irq softirq steal."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu"):
                k, *v = line.split()
                out[k] = [int(x) for x in v[:8]] + [0] * (8 - len(v[:8]))
    return out


def stat_delta(s0, s1, key):
    """(busy without softirq, softirq, total) in ns of CPU time for one /proc/stat line."""
    hz = os.sysconf("SC_CLK_TCK")
    d = [b - a for a, b in zip(s0[key], s1[key])]
    busy = d[0] + d[1] + d[2] + d[5] + d[7]
    return (busy * 1_000_000_000 // hz, d[6] * 1_000_000_000 // hz, sum(d) * 1_000_000_000 // hz)


def children_cpu_ns():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((r.ru_utime + r.ru_stime) * 1e9)


# ---------------------------------------------------------------- network


class Net:
    """One veth pair for one container, 198.18.X.1/24 on the host end and 198.18.X.2/24 on the
    container end; in mode "netns" also a named network namespace holding the container end."""

    def __init__(self, tag, mode):
        self.mode = mode
        self.host_if = "hth%sh" % tag  # <= 15 bytes
        self.cont_if = "hth%sc" % tag
        self.netns = "ocirt-http-%s" % tag if mode == "netns" else None
        self.subnet = None
        self.made_veth = False
        self.made_netns = False

    @property
    def host_ip(self):
        return "198.18.%d.1" % self.subnet

    @property
    def cont_ip(self):
        return "198.18.%d.2" % self.subnet

    @property
    def netns_path(self):
        return os.path.join(NETNS_DIR, self.netns)

    def _pick_subnet(self, ipr):
        used = set()
        for msg in ipr.get_addr(family=socket.AF_INET):
            a = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS") or ""
            if a.startswith("198.18."):
                used.add(int(a.split(".")[2]))
        for route in ipr.get_routes(family=socket.AF_INET):
            dst = route.get_attr("RTA_DST") or ""
            if dst.startswith("198.18."):
                used.add(int(dst.split(".")[2]))
        free = [x for x in range(1, 255) if x not in used]
        if not free:
            raise RuntimeError("no free 198.18.X.0/24 on this host")
        return random.choice(free)

    def setup(self):
        from pyroute2 import IPRoute, netns

        with IPRoute() as ipr:
            self.subnet = self._pick_subnet(ipr)
            ipr.link("add", ifname=self.host_if, kind="veth", peer=self.cont_if)
            self.made_veth = True
            h = ipr.link_lookup(ifname=self.host_if)[0]
            c = ipr.link_lookup(ifname=self.cont_if)[0]
            ipr.addr("add", index=h, address=self.host_ip, prefixlen=24)
            ipr.link("set", index=h, state="up")
            if self.mode == "netdevices":
                # the runtime moves it, keeps this (permanent, global) address and sets it up
                ipr.addr("add", index=c, address=self.cont_ip, prefixlen=24)
                return
            netns.create(self.netns)
            self.made_netns = True
            ipr.link("set", index=c, net_ns_fd=self.netns)
        with IPRoute(netns=self.netns) as ns:
            c = ns.link_lookup(ifname=self.cont_if)[0]
            ns.link("set", index=c, ifname="eth0")
            ns.addr("add", index=c, address=self.cont_ip, prefixlen=24)
            ns.link("set", index=c, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")

    def check_moved(self):
        """After create with netDevices: the container end must have left the host."""
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            if ipr.link_lookup(ifname=self.cont_if):
                raise RuntimeError("%s is still on the host after create" % self.cont_if)

    def teardown(self):
        from pyroute2 import IPRoute, netns

        errors = []
        if self.made_netns:
            try:
                netns.remove(self.netns)
            except OSError as e:
                if os.path.exists(self.netns_path):
                    errors.append("netns %s: %s" % (self.netns, e))
            self.made_netns = False
        if self.made_veth:
            # Deleting either end deletes the pair.  After a netns dies the kernel destroys
            # the veth in it (and so its peer) asynchronously: wait a little for it.
            with IPRoute() as ipr:
                for _ in range(50):
                    idx = ipr.link_lookup(ifname=self.host_if) or ipr.link_lookup(ifname=self.cont_if)
                    if not idx:
                        break
                    try:
                        ipr.link("del", index=idx[0])
                    except Exception:
                        time.sleep(0.1)
                else:
                    errors.append("veth %s still present" % self.host_if)
            self.made_veth = False
        return errors


# ---------------------------------------------------------------- load generators

AB_FIELDS = {
    "complete": r"^Complete requests:\s+(\d+)",
    "failed": r"^Failed requests:\s+(\d+)",
    "non2xx": r"^Non-2xx responses:\s+(\d+)",
    "seconds": r"^Time taken for tests:\s+([\d.]+)",
    "rps": r"^Requests per second:\s+([\d.]+)",
}


def run_ab(url, concurrency, seconds, cpus):
    cmd = ["ab", "-q", "-r", "-s", "10", "-c", str(concurrency), "-t", "%g" % seconds, "-n", "100000000", url]
    p = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=seconds + 60,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(
            "ab failed (%d): %s %s" % (p.returncode, out[-500:], p.stderr.decode(errors="replace")[-500:])
        )
    r = {}
    for k, rx in AB_FIELDS.items():
        m = re.search(rx, out, re.M)
        r[k] = float(m.group(1)) if m else 0.0
    # ab's own figure is complete/elapsed; recompute with the failures left out
    r["ok"] = int(r["complete"] - r["failed"] - r["non2xx"])
    r["complete"], r["failed"], r["non2xx"] = int(r["complete"]), int(r["failed"]), int(r["non2xx"])
    return r


def run_python_loadgen(url, concurrency, seconds, cpus):
    """Run this file as the generator in a child process (so that it can be pinned)."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--loadgen",
        url,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
    ]
    p = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=seconds + 60,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    if p.returncode != 0:
        raise RuntimeError("load generator failed: %s" % p.stderr.decode(errors="replace")[-500:])
    return json.loads(p.stdout)


def loadgen_main(url, concurrency, seconds):
    """Closed loop: `concurrency` threads, each doing one HTTP/1.0 GET per connection (as ab
    does without -k) until the time is up.  Prints a JSON summary."""
    m = re.match(r"http://([^:/]+):(\d+)(/.*)?$", url)
    host, port, path = m.group(1), int(m.group(2)), m.group(3) or "/"
    req = ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: http_cpus\r\n\r\n" % (path, host)).encode()
    counts = {"ok": 0, "failed": 0, "non2xx": 0}
    lock = threading.Lock()
    start = time.monotonic()
    stop = start + seconds

    def worker():
        ok = failed = non2xx = 0
        while time.monotonic() < stop:
            try:
                with socket.create_connection((host, port), timeout=10) as s:
                    s.sendall(req)
                    chunks = []
                    while True:
                        b = s.recv(65536)
                        if not b:
                            break
                        chunks.append(b)
                status = b"".join(chunks).split(b"\r\n", 1)[0].split()
                if len(status) >= 2 and status[1] == b"200":
                    ok += 1
                else:
                    non2xx += 1
            except OSError:
                failed += 1
        with lock:
            counts["ok"] += ok
            counts["failed"] += failed
            counts["non2xx"] += non2xx

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    total = counts["ok"] + counts["failed"] + counts["non2xx"]
    print(
        json.dumps(
            {
                "complete": total,
                "failed": counts["failed"],
                "non2xx": counts["non2xx"],
                "ok": counts["ok"],
                "seconds": round(elapsed, 3),
                "rps": round(counts["ok"] / elapsed, 2),
            }
        )
    )


# ---------------------------------------------------------------- the experiment


class Harness:
    def __init__(self, acct, page_bytes):
        self.acct = acct
        self.run_id = "r%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])
        self.tag_base = uuid.uuid4().hex[:6]
        self.tmp = tempfile.mkdtemp(prefix="ocirt-http-")
        self.rootfs = os.path.join(self.tmp, "rootfs")
        self.live = []  # (runtime, state root, container id) not yet deleted
        self.nets = []  # Net not yet torn down
        self.seq = 0
        self.page_bytes = page_bytes
        with open(SPEC) as f:
            self.spec = json.load(f)

    def cgpath(self, name):
        return "/%s/%s/%s" % (CGROUP_TOP, self.run_id, name)

    def state_root(self, runtime):
        return os.path.join(self.tmp, "state-" + re.sub(r"[^A-Za-z0-9]", "_", runtime)[-40:])

    def rt(self, runtime, *args, check=True, timeout=60):
        return run_runtime(
            [runtime, "--root", self.state_root(runtime)] + list(args), self.tmp, check=check, timeout=timeout
        )

    def build_rootfs(self):
        subprocess.run(["sh", MKROOTFS, self.rootfs], check=True)

    def bundle(self, name, cpus, net):
        b = os.path.join(self.tmp, "bundles", name)
        os.makedirs(b, exist_ok=True)
        spec = json.loads(json.dumps(self.spec))
        body = "<html><body><h1>It works!</h1></body></html>\n"
        body = (
            (body + "x" * max(0, self.page_bytes - len(body) - 1) + "\n")
            if self.page_bytes > len(body)
            else body
        )
        spec["process"]["terminal"] = False
        spec["process"]["args"] = [
            "sh",
            "-c",
            "mkdir -p /tmp/www && printf '%%s' '%s' > /tmp/www/index.html && "
            "exec httpd -f -p %d -h /tmp/www" % (body, PORT),
        ]
        spec["root"] = {"path": self.rootfs, "readonly": True}
        spec["hostname"] = name
        spec["mounts"].append(
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", "size=1m"],
            }
        )
        linux = spec.setdefault("linux", {})
        linux["cgroupsPath"] = self.cgpath(name)
        linux.setdefault("resources", {})["cpu"] = {"cpus": cpus, "mems": "0"}
        nss = [n for n in linux["namespaces"] if n["type"] != "network"]
        if net.mode == "netdevices":
            nss.append({"type": "network"})
            linux["netDevices"] = {net.cont_if: {"name": "eth0"}}
        else:
            nss.append({"type": "network", "path": net.netns_path})
        linux["namespaces"] = nss
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(spec, f, indent=1)
        return b

    def wait_ready(self, ip, timeout=10.0):
        """GET / from the container until it answers 200 (only to the container's address)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((ip, PORT), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    data = s.recv(64)
                    if data.startswith(b"HTTP/1.") and b" 200" in data[:16]:
                        return
                    last = data[:40]
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError("httpd at %s:%d not answering: %s" % (ip, PORT, last))

    def run_one(self, runtime, label, mode, cpus, rnd, a, gen_cpus):
        self.seq += 1
        tag = "%s%02x" % (self.tag_base, self.seq % 256)
        name = "%s-c%s-r%d" % (label, cpus.replace("-", "_"), rnd)
        net = Net(tag, mode)
        self.nets.append(net)
        net.setup()
        b = self.bundle(name, cpus, net)
        cid = "http-%s-%s" % (self.run_id, name)
        self.live.append((runtime, cid))
        try:
            self.rt(runtime, "create", "--bundle", b, cid)
            if mode == "netdevices":
                net.check_moved()
            self.rt(runtime, "start", cid)
            url = "http://%s:%d/" % (net.cont_ip, PORT)
            self.wait_ready(net.cont_ip)
            gen = run_ab if a.load == "ab" else run_python_loadgen
            if a.warmup > 0:
                gen(url, a.concurrency, a.warmup, gen_cpus)
            cg = self.cgpath(name)
            s0, u0, g0, t0 = proc_stat(), self.acct.usage_ns(cg), children_cpu_ns(), time.monotonic_ns()
            r = gen(url, a.concurrency, a.seconds, gen_cpus)
            s1, u1, g1, t1 = proc_stat(), self.acct.usage_ns(cg), children_cpu_ns(), time.monotonic_ns()
        finally:
            self.delete(runtime, cid)
            errs = net.teardown()
            self.nets.remove(net)
            if errs:
                print("warning: " + "; ".join(errs), file=sys.stderr)
        wall = t1 - t0
        busy, soft, _ = stat_delta(s0, s1, "cpu")
        server = u1 - u0
        generator = g1 - g0
        per_cpu = {}
        for k in sorted(s1):
            if k != "cpu":
                b_, s_, tot = stat_delta(s0, s1, k)
                per_cpu[k] = round(100.0 * (b_ + s_) / tot, 1) if tot else 0.0
        pct = lambda ns: round(100.0 * ns / wall, 1)  # noqa: E731
        return {
            "runtime": runtime,
            "label": label,
            "net": mode,
            "cpus": cpus,
            "ncpus": len(expand_cpus(cpus)),
            "round": rnd,
            "rps": r["rps"],
            "complete": r["complete"],
            "ok": r["ok"],
            "failed": r["failed"],
            "non2xx": r["non2xx"],
            "load_seconds": r["seconds"],
            "server_cpu_pct": pct(server),
            "generator_cpu_pct": pct(generator),
            "softirq_pct": pct(soft),
            "other_load_pct": pct(busy + soft - server - generator),
            "per_cpu_busy_pct": per_cpu,
            "container_ip": net.cont_ip,
        }

    def delete(self, runtime, cid):
        self.rt(runtime, "delete", "--force", cid, check=False)
        if (runtime, cid) in self.live:
            self.live.remove((runtime, cid))

    def cleanup(self):
        if os.getpid() != MAIN_PID:
            return
        for runtime, cid in list(self.live):
            try:
                self.delete(runtime, cid)
            except Exception as e:  # keep cleaning
                print("warning: delete %s: %s" % (cid, e), file=sys.stderr)
        for net in list(self.nets):
            for e in net.teardown():
                print("warning: " + e, file=sys.stderr)
            self.nets.remove(net)
        remove_run_cgroups(self.acct, CGROUP_TOP, self.run_id)
        shutil.rmtree(self.tmp, ignore_errors=True)


def parse_runtime(s):
    """PATH[@netdevices|@netns] -> (path, label, mode); default mode: netdevices for ocirt."""
    path, _, mode = s.partition("@")
    if os.sep in path:
        path = os.path.abspath(path)
    base = os.path.basename(path)
    if not mode:
        mode = "netdevices" if base.startswith("ocirt") else "netns"
    if mode not in ("netdevices", "netns"):
        raise SystemExit("unknown network mode %r (netdevices or netns)" % mode)
    return path, "%s-%s" % (re.sub(r"[^a-z0-9]", "", base.lower())[:8] or "rt", mode), mode


def summarize(runs):
    rows = []
    keys = []
    for r in runs:
        k = (r["label"], r["cpus"])
        if k not in keys:
            keys.append(k)
    for label, cpus in keys:
        rs = [r for r in runs if r["label"] == label and r["cpus"] == cpus]
        med = lambda f, rs=rs: round(statistics.median(r[f] for r in rs), 1)  # noqa: E731
        rows.append(
            {
                "label": label,
                "runtime": rs[0]["runtime"],
                "net": rs[0]["net"],
                "cpus": cpus,
                "ncpus": rs[0]["ncpus"],
                "n": len(rs),
                "rps_median": med("rps"),
                "rps_all": [r["rps"] for r in rs],
                "rps_min": min(r["rps"] for r in rs),
                "rps_max": max(r["rps"] for r in rs),
                "failed": sum(r["failed"] + r["non2xx"] for r in rs),
                "server_cpu_pct": med("server_cpu_pct"),
                "generator_cpu_pct": med("generator_cpu_pct"),
                "softirq_pct": med("softirq_pct"),
                "other_load_pct": med("other_load_pct"),
                "other_load_max": max(r["other_load_pct"] for r in rs),
            }
        )
    base = {}
    for row in rows:
        if row["ncpus"] == 1:
            base[row["label"]] = row["rps_median"]
    for row in rows:
        b = base.get(row["label"])
        row["speedup"] = round(row["rps_median"] / b, 2) if b else None
    return rows


def print_table(rows, a, gen_desc):
    print()
    print("Table 2 over the network: busybox httpd in a container, CPUs by cpuset, load from the host")
    print(
        "load: %s, concurrency %d, %gs per run, median of %d rounds; %s"
        % (a.load, a.concurrency, a.seconds, a.rounds, gen_desc)
    )
    print(
        "| runtime | network | CPUs | req/s median | min-max | speed-up | failed | server CPU % "
        "| generator CPU % | softirq % | other load % (max) | paper req/s | paper speed-up |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        p = PAPER_TABLE2.get(r["ncpus"])
        print(
            "| %s | %s | %s | %.0f | %.0f-%.0f | %s | %d | %.0f | %.0f | %.0f | %.1f (%.1f) | %s | %s |"
            % (
                os.path.basename(r["runtime"]),
                r["net"],
                r["cpus"],
                r["rps_median"],
                r["rps_min"],
                r["rps_max"],
                "%.2f" % r["speedup"] if r["speedup"] else "-",
                r["failed"],
                r["server_cpu_pct"],
                r["generator_cpu_pct"],
                r["softirq_pct"],
                r["other_load_pct"],
                r["other_load_max"],
                p if p else "-",
                "%.2f" % (p / PAPER_TABLE2[1]) if p else "-",
            )
        )
    print(
        "CPU columns: % of one CPU over the run. server = the container's cgroup (cpuacct),\n"
        "generator = the load generator's rusage, softirq = the host's softirq time (/proc/stat;\n"
        "veth traffic is processed there; this kernel charges it to the task it interrupts, so it\n"
        "is mostly inside server and generator already), other = the host's non-idle time\n"
        "minus server and generator: load from anything else."
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--runtime",
        action="append",
        metavar="PATH[@MODE]",
        help="runtime to test, repeatable; MODE netdevices (default for ocirt*) or "
        "netns (default otherwise). Default: %s and %s" % (OCIRT, RUNC),
    )
    ap.add_argument(
        "--cpus", default="0 0-1", help="cpuset settings to test, space separated (default %(default)r)"
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="load per run (default %(default)s)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured load before each run")
    ap.add_argument("--rounds", type=int, default=3, help="runs per setting; median reported")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    ap.add_argument(
        "--load",
        choices=("auto", "ab", "python"),
        default="auto",
        help="load generator: ab (ApacheBench) if installed, else python",
    )
    ap.add_argument(
        "--gen-cpus",
        default=None,
        help="CPUs the load generator is pinned to (default: the last CPU; 'all' for no pinning)",
    )
    ap.add_argument("--page-bytes", type=int, default=177, help="size of the page served")
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        metavar="S",
        help="before each run wait up to S s for the host to be idle (0: don't)",
    )
    ap.add_argument(
        "--max-other",
        type=float,
        default=10.0,
        metavar="PCT",
        help="discard and redo a run during which other load exceeded PCT %% of a CPU (default %(default)s)",
    )
    ap.add_argument(
        "--retries",
        type=int,
        default=3,
        help="redos per run at most; the last attempt is kept whatever its other load (default %(default)s)",
    )
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--loadgen", metavar="URL", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.loadgen:
        loadgen_main(a.loadgen, a.concurrency, a.seconds)
        return 0
    if os.geteuid() != 0:
        raise SystemExit("must run as root")
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        raise SystemExit("pyroute2 is needed: run with the project's venv (.venv/bin/python)") from None
    if a.load == "auto":
        a.load = "ab" if shutil.which("ab") else "python"
    elif a.load == "ab" and not shutil.which("ab"):
        raise SystemExit("ab not found (apt-get install -y apache2-utils)")
    runtimes = [parse_runtime(s) for s in (a.runtime or [OCIRT, RUNC])]
    cpus_list = a.cpus.split()
    ncpu = os.cpu_count()
    if a.gen_cpus == "all":
        gen_cpus = None
        gen_desc = "generator not pinned"
    else:
        gen_cpus = set(expand_cpus(a.gen_cpus)) if a.gen_cpus else {ncpu - 1}
        gen_desc = "generator pinned to CPU %s" % ",".join(map(str, sorted(gen_cpus)))

    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a shell's `cmd &`)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    acct = Accounting()
    h = Harness(acct, a.page_bytes)
    ok = True
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "kernel": os.uname().release,
        "ncpus": ncpu,
        "load": a.load,
        "concurrency": a.concurrency,
        "seconds": a.seconds,
        "warmup": a.warmup,
        "rounds": a.rounds,
        "page_bytes": a.page_bytes,
        "generator_cpus": sorted(gen_cpus) if gen_cpus else "all",
        "accounting": acct.describe(),
        "run_id": h.run_id,
        "runtimes": [{"path": p, "label": lb, "net": m} for p, lb, m in runtimes],
        "max_other": a.max_other,
        "runs": [],
        "discarded": [],
        "table": [],
    }
    try:
        h.build_rootfs()
        for rnd in range(1, a.rounds + 1):
            for path, label, mode in runtimes:
                for cpus in cpus_list:
                    for attempt in range(1, a.retries + 2):
                        idle = wait_idle(a.wait_idle) if a.wait_idle > 0 else None
                        r = h.run_one(path, label, mode, cpus, rnd, a, gen_cpus)
                        r["idle_before_pct"] = idle
                        r["attempt"] = attempt
                        if r["other_load_pct"] <= a.max_other or attempt > a.retries:
                            break
                        print(
                            "round %d %-20s cpus=%-4s %8.1f req/s  discarded: other load %.1f%%"
                            % (rnd, label, cpus, r["rps"], r["other_load_pct"]),
                            flush=True,
                        )
                        result["discarded"].append(r)
                    result["runs"].append(r)
                    print(
                        "round %d %-20s cpus=%-4s %8.1f req/s  failed %d  server %.0f%%  gen %.0f%%  "
                        "softirq %.0f%%  other %.1f%%  per-cpu %s"
                        % (
                            rnd,
                            label,
                            cpus,
                            r["rps"],
                            r["failed"] + r["non2xx"],
                            r["server_cpu_pct"],
                            r["generator_cpu_pct"],
                            r["softirq_pct"],
                            r["other_load_pct"],
                            r["per_cpu_busy_pct"],
                        ),
                        flush=True,
                    )
    except (KeyboardInterrupt, Terminated):
        print("\ninterrupted, cleaning up", file=sys.stderr)
        ok = False
    except Exception as e:
        print("error: %s: %s; cleaning up" % (type(e).__name__, e), file=sys.stderr)
        ok = False
    finally:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            h.cleanup()
        finally:
            signal.signal(signal.SIGINT, old)

    if result["runs"]:
        result["table"] = summarize(result["runs"])
        print_table(result["table"], a, gen_desc)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
