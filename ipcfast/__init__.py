"""ipcfast: fast, crash-safe interprocess communication over POSIX shared memory."""
from queue import Empty, Full

from ._version import __version__
from ._native import IncompatibleSegmentError, IpcfastError, ReceiverBusyError, ReceiverDiedError
from .context import get_context, get_start_method, set_start_method
from .mailbox import Mailbox, Message, Receipt, receiver_id
from .pipe import Connection, Pipe
from .queue import JoinableQueue, Queue, SimpleQueue
from .ring import Ring

__all__ = ["__version__", "Ring", "Queue", "SimpleQueue", "JoinableQueue", "Pipe", "Connection",
           "Mailbox", "Message", "Receipt", "receiver_id", "Empty", "Full", "IpcfastError",
           "IncompatibleSegmentError", "ReceiverBusyError", "ReceiverDiedError",
           "get_context", "get_start_method", "set_start_method"]


def __getattr__(name):
    # ipcfast.aio on first use (without importing asyncio for programs that do not use it)
    if name == "aio":
        import importlib
        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
