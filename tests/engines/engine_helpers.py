"""What the engine tests share."""
import os


def rmdir_tree(path: str) -> None:
    """Remove an (empty) cgroup directory tree, deepest first; what is still in use stays."""
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -t[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
