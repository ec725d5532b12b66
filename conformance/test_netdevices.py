"""linux.netDevices (config-linux.md "Network Devices"): host devices moved into the container.

Each test makes its own veth pair on the host (unique names, removed at teardown) and gives one
end to the container, then checks from inside (busybox `ip`) and from the host:

- the device is in the container, renamed (or with the host name, or a "%d" template resolved);
- its permanent global addresses (IPv4 and IPv6) came along, and it is up: the host reaches the
  container through the veth peer (traffic only into the test's own namespace);
- it is not moved back at delete (a veth dies with the namespace, its host peer with it);
- a move that cannot be done fails create with the device named, before anything is moved;
- a create that fails after the move gives the device back to the host, addresses and all.

runc 1.1.5 predates netDevices (runc 1.3): it ignores the field.
"""

import random
import socket
import subprocess
import time
import uuid

import pytest
from runtime import assert_failed_cleanly, ok, sh, wait_for

RUNC = "runc 1.1.5 ignores linux.netDevices (support came in runc 1.3)"
NETNS = {"type": "network"}


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def link_exists(name):
    return ip("link", "show", "dev", name, check=False).returncode == 0


@pytest.fixture
def veth():
    """veth() -> (container end, host end, subnet prefix "198.18.X"): a fresh pair on the host."""
    made = []

    def make():
        tag = uuid.uuid4().hex[:8]
        inner, outer = f"oc{tag}c", f"oc{tag}h"
        ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        made.append(outer)
        made.append(inner)
        net = f"198.{random.randint(18, 19)}.{random.randint(0, 255)}"
        return inner, outer, net

    yield make
    for name in made:
        if link_exists(name):
            ip("link", "del", name, check=False)


def with_netdevs(devices, extra_ns=True):
    def mutate(cfg):
        cfg["linux"]["netDevices"] = devices
        if extra_ns and NETNS not in cfg["linux"]["namespaces"]:
            cfg["linux"]["namespaces"].append(dict(NETNS))

    return mutate


@pytest.mark.runc_deviates(RUNC)
def test_moved_renamed_with_addresses_and_up(rt, make_bundle, veth):
    inner, outer, net = veth()
    ip("addr", "add", f"{net}.2/24", "dev", inner)
    ip("-6", "addr", "add", "fd00:5eed::2/64", "dev", inner, "nodad")
    ip("addr", "add", f"{net}.1/24", "dev", outer)
    ip("link", "set", outer, "up")
    b = make_bundle(
        sh("echo hello-from-eth0 | nc -l -p 7777"), mutate=with_netdevs({inner: {"name": "eth0"}})
    )
    ok(rt.create(b.id, b))
    assert not link_exists(inner)
    out = ok(rt("exec", b.id, "ip", "addr", "show", "dev", "eth0"))
    assert f"inet {net}.2/24" in out
    assert "inet6 fd00:5eed::2/64" in out
    v6 = next(line for line in out.splitlines() if "fd00:5eed::2/64" in line)
    assert "tentative" not in v6  # it passed DAD on the host: usable at once inside
    assert ",UP" in out or "<UP" in out
    # the host reaches the container through the peer (traffic into the test's namespace only)
    ok(rt.start(b.id))
    got = b""
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        try:
            with socket.create_connection((f"{net}.2", 7777), timeout=5) as conn:
                got = conn.recv(100)
        except OSError:
            time.sleep(0.05)  # nc is not listening yet
    assert got.strip() == b"hello-from-eth0"
    ok(rt.delete(b.id, force=True))
    # not moved back: the veth dies with the namespace, and its host peer with it (the kernel
    # frees a namespace asynchronously: shortly after its last process)
    wait_for(lambda: not link_exists(outer), timeout=10, what="the veth to go with the namespace")
    assert not link_exists(inner)


@pytest.mark.runc_deviates(RUNC)
def test_host_name_kept_and_template(run_in, veth):
    a, _, _ = veth()
    c, _, _ = veth()
    p = run_in(
        sh("ip -o link show | cut -d: -f2 | tr -d ' ' | cut -d@ -f1 | sort"),
        mutate=with_netdevs({a: {}, c: {"name": "net%d"}}),
    )
    names = ok(p).split()
    assert a in names
    assert "net0" in names


@pytest.mark.runc_deviates(RUNC)
def test_missing_device_fails_before_moving_any(rt, make_bundle, veth):
    a, _, _ = veth()
    b = make_bundle(["true"], mutate=with_netdevs({a: {"name": "eth0"}, "ocnosuchdev": {}}))
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer="/linux/netDevices/ocnosuchdev")
    assert link_exists(a), "a device was moved although the move could not be done"


@pytest.mark.runc_deviates(RUNC)
def test_name_taken_inside(rt, make_bundle, veth):
    a, _, _ = veth()
    b = make_bundle(["true"], mutate=with_netdevs({a: {"name": "lo"}}))
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer="/linux/netDevices/")
    assert link_exists(a)


@pytest.mark.runc_deviates(RUNC)
def test_needs_a_network_namespace(rt, make_bundle, veth):
    a, _, _ = veth()

    def mutate(cfg):
        cfg["linux"]["netDevices"] = {a: {}}
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]

    b = make_bundle(["true"], mutate=mutate)
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer="/linux/netDevices")
    assert link_exists(a)


def test_failed_create_gives_the_device_back(rt, make_bundle, veth):
    a, _, net = veth()
    ip("addr", "add", f"{net}.2/24", "dev", a)
    ip("link", "set", a, "up")

    def mutate(cfg):
        with_netdevs({a: {"name": "eth0"}})(cfg)
        cfg["mounts"].append({"destination": "/tmp/bad", "type": "ocirtnosuchfs", "source": "x"})

    b = make_bundle(["true"], mutate=mutate)
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p)
    assert link_exists(a), "the device died with the failed container's namespace"
    out = ip("addr", "show", "dev", a).stdout
    assert f"inet {net}.2/24" in out and ",UP" in out
