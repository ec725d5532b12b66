"""cffi out-of-line ABI build: generates ocirt/kernel/_libseccomp.py at install time.

Like _build.py for libc: the generated module holds the libseccomp declarations pre-parsed, so
ocirt.seccomp parses no C at run time. ABI mode: libseccomp.so.2 is dlopen()ed when a config has
linux.seccomp, no compiler and no libseccomp headers are needed to build.

setup.py: cffi_modules=[..., "ocirt/kernel/_seccomp_build.py:ffibuilder"]
"""

import os
import sys

from cffi import FFI

sys.path.insert(0, os.path.dirname(__file__))
from _seccomp_cdefs import CDEF  # noqa: E402

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("ocirt.kernel._libseccomp", None)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(os.path.dirname(__file__), "..", ".."))
