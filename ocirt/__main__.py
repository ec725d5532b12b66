import posix
import sys

try:  # ^C before the command took over ends as the command ends one, 130 (as bin/ocirt)
    from ocirt.launch import stdio

    stdio()  # a closed fd 0-2 becomes /dev/null first, as bin/ocirt's launcher does

    from ocirt.cli import main  # after stdio: nothing of the command opened before it

    sys.exit(main())
except KeyboardInterrupt:
    posix._exit(130)
