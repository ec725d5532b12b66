import posix
import sys

try:  # ^C before the command took over ends as the command ends one, 130 (as bin/ocirt)
    from ocirt.launch import stdio

    stdio()  # a closed fd 0-2 becomes /dev/null first, as bin/ocirt's launcher does

    from ocirt.cli import main  # after stdio: nothing of the command opened before it

    sys.exit(main())
except KeyboardInterrupt:
    posix._exit(130)
except Exception as e:  # noqa: BLE001 - its modules not loaded (no fd left): one line, as bin/ocirt
    posix.write(2, f"ocirt: cannot start: {' '.join(str(e).split())}\n".encode(errors="replace"))
    posix._exit(1)
