"""tmpcopyup's tree copy, on plain directories (no mount needed)."""

import os
import stat

import pytest

from ocirt.copyup import copy_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown/mknod need root")


def test_copy_keeps_types_modes_owners_and_times(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "f").write_bytes(b"x" * 300000)
    os.chmod(src / "f", 0o640)
    os.chown(src / "f", 1000, 1001)
    os.utime(src / "f", ns=(10**18, 2 * 10**18))
    (src / "d" / "e").mkdir(parents=True)
    (src / "d" / "e" / "g").write_text("deep")
    os.chmod(src / "d", 0o711)
    os.symlink("/etc/passwd", src / "abs-link")  # copied as a link, not followed
    os.symlink("d/e/g", src / "rel-link")
    os.mkfifo(src / "fifo", 0o620)
    os.chmod(src, 0o1777)
    s = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    d = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        copy_tree(s, d)
    finally:
        os.close(s)
        os.close(d)
    assert (dst / "f").read_bytes() == b"x" * 300000
    st = os.stat(dst / "f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 1000, 1001)
    assert st.st_mtime_ns == 2 * 10**18
    assert (dst / "d" / "e" / "g").read_text() == "deep"
    assert stat.S_IMODE(os.stat(dst / "d").st_mode) == 0o711
    assert os.readlink(dst / "abs-link") == "/etc/passwd"
    assert os.readlink(dst / "rel-link") == "d/e/g"
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o1777
