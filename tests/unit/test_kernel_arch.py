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


def test_exchange_swaps_two_files(tmp_path):
    """renameat2 with RENAME_EXCHANGE, by number (glibc before 2.28 has no wrapper)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("new")
    b.write_text("old")
    try:
        linux.LinuxKernel().exchange(str(a), str(b))
    except OSError as e:  # a filesystem without it (tmp_path on one): nothing swapped
        assert e.errno in (errno.EINVAL, errno.ENOSYS)
        pytest.skip(f"no RENAME_EXCHANGE here: {e}")
    assert (b.read_text(), a.read_text()) == ("new", "old")
    with pytest.raises(FileNotFoundError):
        linux.LinuxKernel().exchange(str(a), str(tmp_path / "nothing"))
