from setuptools import setup

# cffi's setuptools integration builds ipcfast._ipcfast from build_ffi.py (API mode). cffi
# compiles it against the stable ABI (Py_LIMITED_API, a `.abi3.so`), so the wheel is tagged
# abi3 for every CPython from 3.9 on: the tag and the file name agree.
setup(
    cffi_modules=["build_ffi.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
