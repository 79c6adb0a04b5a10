"""Build ipcfast._ipcfast with cffi in API (out-of-line) mode.

The cdef is csrc/ipcfast.h (the public API) followed by csrc/layout.h (the shared-memory
layout, there only so tests can check it with ffi.sizeof/offsetof), minus what cffi cannot
read: preprocessor lines other than integer #defines, and _Static_asserts. The headers the C
code compiles against are the ones Python sees.
"""
import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE / "csrc"
HEADERS = ["ipcfast.h", "layout.h"]


def _version() -> str:
    text = (HERE / "ipcfast" / "_version.py").read_text()
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def _cdef() -> str:
    keep = re.compile(r"#define\s+IPCF_[A-Z0-9_]+\s+-?(0x[0-9a-fA-F]+|\d+)\b")
    lines = []
    for name in HEADERS:
        text = re.sub(r"_Static_assert\s*\([^;]*\);", "", (CSRC / name).read_text())
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                m = keep.match(line.strip())
                if not m:
                    continue
                line = m.group(0)
            lines.append(line)
    return "\n".join(lines)


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "ipcfast._ipcfast",
    "".join(f'#include "{h}"\n' for h in HEADERS),
    sources=[str(p.relative_to(HERE)) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC.relative_to(HERE))],
    define_macros=[("IPCF_PKG_VERSION", _version())],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Werror=implicit-function-declaration"],
    libraries=["rt", "pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
