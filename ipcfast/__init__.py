"""ipcfast: fast, crash-safe interprocess communication over POSIX shared memory."""
from queue import Empty, Full

from ._version import __version__
from ._native import IncompatibleSegmentError, IpcfastError
from .queue import JoinableQueue, Queue, SimpleQueue
from .ring import Ring

__all__ = ["__version__", "Ring", "Queue", "SimpleQueue", "JoinableQueue", "Empty", "Full",
           "IpcfastError", "IncompatibleSegmentError"]
