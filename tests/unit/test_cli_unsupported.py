"""checkpoint and restore answer a request they cannot serve with one clear line, not a usage
error (the CRIU work itself is tested in tests/test_criu.py)."""

from ocirt.cli import main


def test_checkpoint_and_restore_say_why(tmp_path, capsys):
    def restore() -> list:
        args = ["--root", str(tmp_path), "restore", "--image-path", str(tmp_path / "x")]
        assert main([*args, "-b", str(tmp_path), "--detach", "box"]) == 1
        return capsys.readouterr().err.strip().splitlines()

    assert main(["--root", str(tmp_path), "checkpoint", "--image-path", "/x", "nosuch"]) == 1
    assert "container does not exist: nosuch" in capsys.readouterr().err
    assert len(restore()) == 1  # no config.json
    (tmp_path / "config.json").write_text("{}")
    assert len(restore()) == 1  # an invalid one
    assert not (tmp_path / "box").exists()  # a failed restore leaves no state dir
