"""runc's commands ocirt does not implement yet answer with one clear line, not a usage error."""

from ocirt.cli import main


def test_checkpoint_and_restore_say_why(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "checkpoint", "--image-path", "/x", "nosuch"]) == 1
    assert "container does not exist: nosuch" in capsys.readouterr().err
    assert main(["--root", str(tmp_path), "restore", "--image-path", "/x", "-b", ".", "--detach", "box"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CRIU integration" in err[0]
