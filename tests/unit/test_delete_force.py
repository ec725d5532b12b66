"""`delete --force` is never impossible: a step that fails with an error no handler foresaw (a
bare OSError) is a warning, and what the state still tells of is removed."""

import errno
from types import SimpleNamespace

import pytest

from ocirt.commands import delete
from ocirt.errors import OcirtError


class _Container:
    def __init__(self, error):
        self.error = error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def delete(self, force=False):
        raise self.error


@pytest.mark.parametrize("error", [OSError(errno.EINVAL, "Invalid argument"), OcirtError("cannot remove")])
def test_force_warns_and_removes_what_is_left(monkeypatch, error):
    warned, removed = [], []
    monkeypatch.setattr(
        delete.OpenContainer, "open", staticmethod(lambda root, cid, warn=None: _Container(error))
    )
    monkeypatch.setattr(delete, "remove_leftover", lambda root, cid: removed.append((root, cid)))
    g = SimpleNamespace(root="/run/x", log=SimpleNamespace(warning=warned.append))
    assert delete.main(g, {"force": True}, ["c1"]) == 0
    assert removed == [("/run/x", "c1")]
    assert len(warned) == 1 and "delete --force c1" in warned[0]


def test_without_force_the_error_is_the_commands(monkeypatch):
    monkeypatch.setattr(
        delete.OpenContainer,
        "open",
        staticmethod(lambda root, cid, warn=None: _Container(OSError(errno.EINVAL, "x"))),
    )
    g = SimpleNamespace(root="/run/x", log=SimpleNamespace(warning=print))
    with pytest.raises(OSError):
        delete.main(g, {"force": False}, ["c1"])
