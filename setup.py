"""Build hooks that pyproject.toml cannot express.

- cffi: ocirt/kernel/_build.py generates ocirt/kernel/_libc.py (out-of-line ABI mode), so no C
  declarations are parsed at run time.
- The JSON schemas live in spec/ at the top of the repository; they are copied into the package
  (ocirt/schema/) at build time.
"""
import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSchemas(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "ocirt", "schema")
        os.makedirs(target, exist_ok=True)
        for path in glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "spec", "*.json")):
            shutil.copy(path, target)


setup(cffi_modules=["ocirt/kernel/_build.py:ffibuilder"], cmdclass={"build_py": BuildWithSchemas})
