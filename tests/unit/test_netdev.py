"""linux.netDevices checks (no root): what create refuses before anything is made."""

import pytest

from ocirt.errors import ConfigError
from ocirt.netdev import check


def test_names():
    assert check(
        {"eth1": {"name": "ceth0"}, "veth7": {}, "v2": {"name": "net%d"}, "v3": {"name": "net%d"}}, True
    ) == {"eth1": "ceth0", "veth7": "veth7", "v2": "net%d", "v3": "net%d"}
    assert check(None, False) == {}
    assert check({}, False) == {}


@pytest.mark.parametrize(
    "devices,pointer",
    [
        ({"eth0": {"name": "a" * 16}}, "/linux/netDevices/eth0/name"),
        ({"eth0": {"name": "a/b"}}, "/linux/netDevices/eth0/name"),
        ({"eth0": {"name": ".."}}, "/linux/netDevices/eth0/name"),
        ({"eth0": {"name": "a b"}}, "/linux/netDevices/eth0/name"),
        ({"eth0": {"name": "x%d%d"}}, "/linux/netDevices/eth0/name"),
        ({"et%d": {}}, "/linux/netDevices/et%d"),
        ({"a/b": {}}, "/linux/netDevices/a~1b"),
        ({"eth0": {"name": "c0"}, "eth1": {"name": "c0"}}, "/linux/netDevices/eth1/name"),
    ],
)
def test_refused(devices, pointer):
    with pytest.raises(ConfigError) as e:
        check(devices, True)
    assert pointer in str(e.value)


def test_needs_a_network_namespace():
    with pytest.raises(ConfigError, match="/linux/netDevices"):
        check({"eth0": {}}, False)
