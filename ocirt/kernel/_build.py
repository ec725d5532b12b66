"""cffi out-of-line ABI build: generates ocirt/kernel/_libc.py at install time.

Out-of-line mode means no C declarations are parsed when ocirt runs; the generated module holds
them pre-parsed. No C compiler is needed (ABI mode, libc is dlopen()ed).
"""

import os
import sys

from cffi import FFI

sys.path.insert(0, os.path.dirname(__file__))
from _cdefs import CDEF  # noqa: E402

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("ocirt.kernel._libc", None)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(os.path.dirname(__file__), "..", ".."))
