"""cffi's build hook, which pyproject.toml cannot express: ocirt/kernel/_build.py generates
ocirt/kernel/_libc.py (out-of-line ABI mode), so no C declarations are parsed at run time."""
from setuptools import setup

setup(cffi_modules=["ocirt/kernel/_build.py:ffibuilder", "ocirt/kernel/_seccomp_build.py:ffibuilder"])
