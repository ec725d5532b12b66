"""console.connect's errors in runc's words (engines show them as they are)."""

import socket

import pytest

from ocirt import console
from ocirt.errors import OcirtError


def test_connect_missing_socket_in_runcs_words(tmp_path):
    path = str(tmp_path / "missing.sock")
    with pytest.raises(OcirtError) as e:
        console.connect(path)
    assert str(e.value) == f"dial unix {path}: connect: no such file or directory"


def test_connect_not_listening_in_runcs_words(tmp_path):
    path = str(tmp_path / "s")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    with pytest.raises(OcirtError) as e:
        console.connect(path)
    assert str(e.value) == f"dial unix {path}: connect: connection refused"


def test_connect_gives_a_connected_fd(tmp_path):
    path = str(tmp_path / "ok")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    try:
        fd = console.connect(path)
        conn, _ = listener.accept()
        conn.close()
        socket.socket(fileno=fd).close()
    finally:
        listener.close()
