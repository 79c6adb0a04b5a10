"""Build ipcfast._ipcfast with cffi in API (out-of-line) mode.

The cdef is csrc/ipcfast.h (the public API) followed by csrc/layout.h (the shared-memory
layout, there only so tests can check it with ffi.sizeof/offsetof), minus what cffi cannot
read: preprocessor lines other than integer #defines, and _Static_asserts. The headers the C
code compiles against are the ones Python sees.
"""
import os
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


def _sanitize() -> tuple:
    """(compile, link) flags for IPCFAST_SANITIZE=address,undefined or =thread (an
    instrumented build for CI; see .ci/sanitize). Empty when it is unset."""
    kinds = [k.strip() for k in os.environ.get("IPCFAST_SANITIZE", "").split(",") if k.strip()]
    if not kinds:
        return [], []
    bad = set(kinds) - {"address", "undefined", "thread"}
    if bad or ("thread" in kinds and len(kinds) > 1):
        raise SystemExit(f"IPCFAST_SANITIZE={os.environ['IPCFAST_SANITIZE']!r}: use "
                         "'address', 'undefined', 'address,undefined' or 'thread'")
    flags = [f"-fsanitize={','.join(kinds)}", "-fno-omit-frame-pointer", "-g"]
    if "undefined" in kinds:
        flags.append("-fno-sanitize-recover=undefined")     # a finding fails the run
    if "thread" in kinds:
        flags.append("-DIPCF_TSAN=1")   # lock.h: a lock call TSan intercepts (see there)
    return flags, flags


_SAN_CFLAGS, _SAN_LDFLAGS = _sanitize()

# The GIL, released lazily (csrc/host.h). cffi wraps every call in Py_BEGIN/END_ALLOW_THREADS
# and saves and restores errno around it: ~460 instructions, more than a ring put costs.
# This preamble comes after Python.h and before cffi's wrappers, so its definitions are the
# ones they expand: a call keeps the GIL unless the core says it is about to block
# (ipcf_host_block), and the GIL is retaken when the call returns. errno is not carried:
# the core returns its errors (nothing here reads ffi.errno). The slot is saved and put
# back, so a wrapper run inside another (a callback, were one added) leaves the outer
# one's in place. A cffi that stopped defining these names fails the build here.
_GIL = r"""
#ifdef PYPY_VERSION
void ipcf_host_block(void) {}    /* (PyPy calls the functions directly, no wrappers) */
#else
#if !defined(Py_BEGIN_ALLOW_THREADS) || !defined(_cffi_restore_errno) || !defined(_cffi_save_errno)
#error "cffi's wrappers no longer use the macros build_ffi.py redefines: see _GIL there"
#endif
static __thread PyThreadState **ipcf_gil_slot;   /* the running wrapper's _save, or NULL */

void ipcf_host_block(void)
{
    PyThreadState **slot = ipcf_gil_slot;
    if (slot && !*slot)
        *slot = PyEval_SaveThread();
}

#undef Py_BEGIN_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS { PyThreadState *_save = NULL, **_outer = ipcf_gil_slot; \
    ipcf_gil_slot = &_save;
#undef Py_END_ALLOW_THREADS
#define Py_END_ALLOW_THREADS ipcf_gil_slot = _outer; if (_save) PyEval_RestoreThread(_save); }
#undef _cffi_restore_errno
#define _cffi_restore_errno() ((void)0)
#undef _cffi_save_errno
#define _cffi_save_errno() ((void)0)
#endif
"""
# The TSan build keeps cffi's own release around every call: with the GIL held through
# the core, TSan would see every thread's core code ordered by the GIL's mutex and report
# no race in it. (tests/api/test_gil.py checks the lazy release in the normal build.)
_GIL_TSAN = r"""
void ipcf_host_block(void) {}
"""

ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "ipcfast._ipcfast",
    "".join(f'#include "{h}"\n' for h in HEADERS) + (_GIL_TSAN if "-DIPCF_TSAN=1" in _SAN_CFLAGS else _GIL),
    sources=[str(p.relative_to(HERE)) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC.relative_to(HERE))],
    define_macros=[("IPCF_PKG_VERSION", _version())],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Werror=implicit-function-declaration"] + _SAN_CFLAGS,
    extra_link_args=_SAN_LDFLAGS,
    libraries=["rt", "pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
