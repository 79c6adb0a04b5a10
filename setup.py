from setuptools import setup

# cffi's setuptools integration builds ipcfast._ipcfast from build_ffi.py (API mode).
setup(cffi_modules=["build_ffi.py:ffibuilder"])
