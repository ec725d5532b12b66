"""state.StateDir.remove: what it removes, and what it never does."""

import os

from ocirt.state import StateDir


def test_remove_through_a_symlink_takes_the_state_files_and_the_link_only(tmp_path):
    """A state dir whose place a symlink took: only the files a state dir holds go, through
    the link, then the link; the rest of what it points at stays (a link to /tmp lost /tmp
    what could be removed)."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep-dir").mkdir(parents=True)
    for name in ("keep", "state.json", "exec.fifo"):
        (elsewhere / name).write_text("x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "c1").symlink_to(elsewhere)
    StateDir(str(root), "c1").remove()
    assert not os.path.lexists(root / "c1")
    assert sorted(os.listdir(elsewhere)) == ["keep", "keep-dir"]


def test_remove_of_a_plain_state_dir(tmp_path):
    sd = StateDir(str(tmp_path), "c1")
    os.makedirs(sd.path)
    for name in ("state.json", "state.json.old"):
        with open(os.path.join(sd.path, name), "w") as f:
            f.write("{}")
    os.mkdir(os.path.join(sd.path, "notify"))
    sd.remove()
    assert os.listdir(tmp_path) == []
