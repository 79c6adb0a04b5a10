"""ipcfast: fast, crash-safe interprocess communication over POSIX shared memory."""
from ._version import __version__
from ._native import IncompatibleSegmentError, IpcfastError
from .ring import Ring

__all__ = ["__version__", "Ring", "IpcfastError", "IncompatibleSegmentError"]
