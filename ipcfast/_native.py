"""The only module that touches the cffi extension.

It loads ``ipcfast._ipcfast``, refuses a build whose version stamp differs from this
package, and turns C result codes into Python exceptions in one place (:func:`check`).
Blocking calls go through :func:`call_blocking`, which gives C a bounded slice of the
caller's timeout at a time so that Ctrl-C and other signal handlers run promptly.
"""
from __future__ import annotations

import os
import queue as _queue
import re
import secrets
import time
from typing import Callable, Optional

from ._version import __version__

try:
    from ._ipcfast import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "ipcfast's C extension is not built; install the package with `pip install .` "
        f"(original error: {exc})"
    ) from exc

_built = ffi.string(lib.ipcf_build_version()).decode()
if _built != __version__:  # pragma: no cover - only with a stale build
    raise ImportError(
        f"ipcfast C extension was built for version {_built} but the Python package is "
        f"{__version__}; rebuild it with `pip install .`"
    )


class IpcfastError(Exception):
    """Base class of ipcfast's own errors."""


class IncompatibleSegmentError(IpcfastError, ValueError):
    """The named segment exists but is not an ipcfast segment of the expected kind/version."""


class ReceiverBusyError(IpcfastError):
    """An exclusive mailbox's right to receive is held by another live process."""


class ReceiverDiedError(IpcfastError):
    """The receiver that took a message died before finishing; it was not delivered."""


# C result codes, mirrored for the wrappers.
EEMPTY = lib.IPCF_EEMPTY
EFULL = lib.IPCF_EFULL
EINTR = lib.IPCF_EINTR
ETIMEOUT = lib.IPCF_ETIMEOUT
ETOOBIG = lib.IPCF_ETOOBIG
EBUFSMALL = lib.IPCF_EBUFSMALL
ECLOSED = lib.IPCF_ECLOSED

#: longest single wait inside C before control returns to Python to run signal handlers
SLICE_NS = 100_000_000

_MESSAGES = {
    lib.IPCF_ETIMEOUT: "timed out",
    lib.IPCF_EINTR: "interrupted",
    lib.IPCF_ECLOSED: "closed",
    lib.IPCF_ETOOBIG: "message too big",
    lib.IPCF_EBADMAGIC: "is not an ipcfast segment (bad magic number)",
    lib.IPCF_EVERSION: f"was made by an ipcfast with another layout version (this one reads layout {lib.IPCF_LAYOUT_VERSION})",
    lib.IPCF_EKIND: "is an ipcfast segment of another kind",
    lib.IPCF_ETRUNCATED: "is truncated or its header is inconsistent",
    lib.IPCF_ECORRUPT: "is corrupt: its shared state is inconsistent (a buggy or hostile process wrote to it)",
    lib.IPCF_EBADNAME: (f"is not a valid name: use 1 to {lib.IPCF_NAME_MAX} characters from "
                        "[A-Za-z0-9._-], not starting with '.'"),
    lib.IPCF_EBADARG: "invalid argument",
    lib.IPCF_EBUFSMALL: "buffer too small",
    lib.IPCF_ESTATE: "call out of order",
    lib.IPCF_ENOTREADY: "is still being initialised by its creator",
    lib.IPCF_EJOIN: "task_done() called too many times",
    lib.IPCF_EBUSY: "is exclusive and another process holds the right to receive",
    lib.IPCF_EPEERDEAD: "the receiver died before finishing with the message; it was not delivered",
}

_INCOMPATIBLE = (lib.IPCF_ECORRUPT, lib.IPCF_EBADMAGIC, lib.IPCF_EVERSION, lib.IPCF_EKIND, lib.IPCF_ETRUNCATED,
                 lib.IPCF_ENOTREADY)


def error(rc: int, what: str = "", name: Optional[str] = None) -> BaseException:
    """The exception for C result code *rc* (negative)."""
    subject = f"{what} {name!r}" if name else what
    if rc == EEMPTY:
        return _queue.Empty()
    if rc == EFULL:
        return _queue.Full()
    if rc in _INCOMPATIBLE:
        return IncompatibleSegmentError(f"{subject} {_MESSAGES[rc]}".strip())
    if rc == ECLOSED:
        return ValueError(f"{subject} is closed".strip())
    if rc in (lib.IPCF_EBADNAME, lib.IPCF_EBADARG, lib.IPCF_ETOOBIG, lib.IPCF_EJOIN):
        return ValueError(f"{subject} {_MESSAGES[rc]}".strip() if rc == lib.IPCF_EBADNAME
                          else _MESSAGES[rc])
    if rc == lib.IPCF_EBUSY:
        return ReceiverBusyError(f"{subject} {_MESSAGES[rc]}".strip())
    if rc == lib.IPCF_EPEERDEAD:
        return ReceiverDiedError(f"{subject}: {_MESSAGES[rc]}")
    if rc in _MESSAGES:
        return IpcfastError(f"{subject}: {_MESSAGES[rc]}")
    if -200 < rc < 0:
        # OSError picks the subclass: FileNotFoundError, FileExistsError, PermissionError ...
        return OSError(-rc, os.strerror(-rc), name)
    return IpcfastError(f"{subject}: unexpected result code {rc}")


def check(rc: int, what: str = "", name: Optional[str] = None) -> int:
    """Return *rc* if it is not an error, else raise the matching exception."""
    if rc < 0:
        raise error(rc, what, name)
    return rc


def timeout_arg(timeout, negative_is_zero: bool = False) -> Optional[float]:
    """*timeout* (seconds) checked once for every blocking call: None or +inf waits forever
    (None is returned); a number >= 0 is returned as a float. A negative number raises
    ValueError (queue.Queue's rule) or, with *negative_is_zero* (multiprocessing's queues),
    means "do not wait". NaN raises ValueError; anything but a real number TypeError."""
    if timeout is None:
        return None
    if type(timeout) is not float:
        if isinstance(timeout, (str, bytes, bytearray)) or not hasattr(timeout, "__float__"):
            raise TypeError(f"'timeout' must be a number or None, not {type(timeout).__name__}")
        timeout = float(timeout)
    if timeout != timeout:
        raise ValueError("'timeout' must be a number, not NaN")
    if timeout < 0:
        if negative_is_zero:
            return 0.0
        raise ValueError("'timeout' must be a non-negative number")
    return None if timeout == _INF else timeout


_INF = float("inf")


def int_arg(value, what: str, low: int, high: int) -> int:
    """*value* as an int in low..high: TypeError for a non-int (bool and float included),
    ValueError naming *what* and the range otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is outside {low}..{high}")
    return value


def first_slice(block: bool, timeout: Optional[float]) -> int:
    """Nanoseconds for the first, fast-path try: a slice when blocking forever, else 0 (a
    timed call then waits in :func:`call_blocking`, which owns its deadline). Validates
    *timeout* (:func:`timeout_arg`)."""
    if not block:
        return 0
    return SLICE_NS if timeout_arg(timeout) is None else 0


def call_blocking(fn: Callable[[int], int], block: bool, timeout: Optional[float],
                  nothing: int, start: Optional[float] = None) -> int:
    """Call ``fn(timeout_ns)`` until it returns something other than *nothing* (the code for
    "not yet": EFULL/EEMPTY) or EINTR, or until the caller's deadline passes.

    Each call waits at most SLICE_NS inside C; between calls Python runs signal handlers, so
    Ctrl-C raises KeyboardInterrupt here within about 100 ms.
    """
    if not block:
        return fn(0)
    timeout = timeout_arg(timeout)
    if timeout is None:
        while True:
            rc = fn(SLICE_NS)
            if rc != nothing and rc != EINTR:
                return rc
    deadline = (time.monotonic() if start is None else start) + timeout
    while True:
        left = deadline - time.monotonic()
        ns = int(left * 1e9) if left > 0 else 0
        rc = fn(ns if ns < SLICE_NS else SLICE_NS)
        if rc != nothing and rc != EINTR:
            return rc
        if left <= 0:
            return nothing


def encode_name(name, what: str) -> bytes:
    """*name* as the C side takes it; ValueError for anything C would not see whole."""
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str, not {type(name).__name__}")
    if "\0" in name:
        raise ValueError(f"{what} name {name!r} contains a NUL character")
    if _RESERVED.search(name):
        raise ValueError(f"{what} name {name!r} ends in '.<digits>', which is reserved for the "
                         "rings of a queue")
    return name.encode()


_RESERVED = re.compile(r"\.[0-9]+$")


def new_name(prefix: str) -> str:
    """A fresh segment name: prefix, pid and 64 random bits."""
    return f"ipcf-{prefix}-{os.getpid()}-{secrets.token_hex(8)}"


def as_buffer(data) -> tuple:
    """(argument for a ``const char *`` parameter, its length in bytes)."""
    if type(data) is bytes:
        return data, len(data)
    buf = ffi.from_buffer(data)
    return buf, len(buf)


# Raw (uncleared) scratch memory: the C side always writes before Python reads.
new_raw = ffi.new_allocator(should_clear_after_alloc=False)


#: a pickled handle (or pipe end) keeps its segment alive this long unattached (the one
#: definition in Python; read at each pickling, so a test may lower it)
TRANSIT_NS = lib.IPCF_TRANSIT_NS


__all__ = ["ffi", "lib", "check", "error", "IpcfastError", "IncompatibleSegmentError",
           "ReceiverBusyError", "ReceiverDiedError",
           "call_blocking", "first_slice", "timeout_arg", "int_arg", "new_name", "as_buffer", "new_raw", "TRANSIT_NS",
           "encode_name"]
