"""ipcfast.remote: the Queue / JoinableQueue API over Redis Streams (redis-py), for
pipelines that span hosts, and a bridge between a local ipcfast.Queue and a stream.

Needs the ``redis`` extra (``pip install 'ipcfast[redis]'``); ``import ipcfast`` never
imports redis-py, only ``import ipcfast.remote`` does.
"""
from queue import Empty, Full

from .queue import GROUP, JoinableQueue, Queue

__all__ = ["Queue", "JoinableQueue", "Empty", "Full", "GROUP"]
