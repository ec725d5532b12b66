import sys

from ocirt.launch import stdio

stdio()  # a closed fd 0-2 becomes /dev/null first, as bin/ocirt's launcher does

from ocirt.cli import main  # noqa: E402 - after stdio: nothing of the command opened before it

sys.exit(main())
