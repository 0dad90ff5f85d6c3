"""Only what pyproject.toml cannot say: the cffi extension (pyruntime._native).

Everything else lives in pyproject.toml. Set PYRUNTIME_SKIP_NATIVE=1 to leave the
extension out of a build; `make setup` does so for its editable install and builds
pyruntime/_native*.so in place with `python native/build.py` instead, so the two
never produce competing copies of the module.
"""

import os

from setuptools import setup

if os.environ.get("PYRUNTIME_SKIP_NATIVE") == "1":
    setup()
else:
    setup(cffi_modules=["native/build.py:ffibuilder"])
