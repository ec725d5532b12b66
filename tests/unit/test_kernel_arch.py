"""The syscall numbers ocirt calls by number: a table per architecture, never a guess."""

import errno

import pytest

from ocirt.kernel import linux


def test_every_known_architecture_has_every_syscall():
    wanted = set(linux.syscall_numbers("x86_64", 8))
    for machine in ("aarch64", "riscv64", "loongarch64", "ppc64le", "ppc64", "s390x"):
        assert set(linux.syscall_numbers(machine, 8)) == wanted, machine


@pytest.mark.parametrize(
    "machine,size", [("x86_64", 4), ("armv7l", 4), ("mips64", 8), ("sparc64", 8), ("i686", 4)]
)
def test_unknown_abi_has_no_table(machine, size):
    assert linux.syscall_numbers(machine, size) == {}


def test_a_missing_number_is_enosys_not_another_syscall():
    kern = linux.LinuxKernel()
    kern._nr = {}
    with pytest.raises(OSError) as e:
        kern.pivot_root(".", ".")
    assert e.value.errno == errno.ENOSYS
    assert "not known for this architecture" in str(e.value)
