"""A private ``redis-server`` for the tests and the bench: started on 127.0.0.1 with a free
port (or on a Unix socket) in a temporary directory, stopped and removed after.

It never touches any other address: no test or benchmark talks to a Redis it did not
start. Imports only the standard library (``redis`` is not needed to start a server).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import List, Optional, Sequence


def redis_server_path() -> Optional[str]:
    """Path of the ``redis-server`` executable, or None when it is not installed."""
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server")
         if os.access(p, os.X_OK)), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(host: str, port: Optional[int], path: Optional[str], timeout: float = 0.5) -> bool:
    """True when a Redis answers PING, and is not still loading (raw RESP, no redis-py)."""
    try:
        if path:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(timeout)
            s.connect(path)
        else:
            s = socket.create_connection((host, port), timeout=timeout)
        with s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))   # up (with a password: NOAUTH)
    except OSError:
        return False


class RedisServer:
    """One private redis-server. ``url`` is what clients connect to.

    ``extra`` are further ``--option value`` arguments (e.g. ``["--proto-max-bulk-len",
    "1mb"]``); ``persist`` turns on the append-only file (fsync always) in the server's own
    directory, so that :meth:`restart` keeps the data; ``unix`` listens on a socket file
    instead of a port."""

    def __init__(self, extra: Sequence[str] = (), persist: bool = False, unix: bool = False) -> None:
        exe = redis_server_path()
        if exe is None:
            raise FileNotFoundError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.exe = exe
        self.dir = tempfile.mkdtemp(prefix="ipcfast-redis-")
        self.host = "127.0.0.1"
        self.unix = os.path.join(self.dir, "redis.sock") if unix else None
        self.port = 0 if unix else free_port()
        self.extra = list(extra)
        self.persist = persist
        self.proc: Optional[subprocess.Popen] = None
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return f"unix://{self.unix}" if self.unix else f"redis://{self.host}:{self.port}/0"

    def _argv(self) -> List[str]:
        argv = [self.exe, "--port", str(self.port), "--bind", self.host, "--dir", self.dir,
                "--save", "", "--daemonize", "no", "--protected-mode", "yes",
                "--logfile", os.path.join(self.dir, "redis.log")]
        argv += (["--appendonly", "yes", "--appendfsync", "always"] if self.persist
                 else ["--appendonly", "no"])
        if self.unix:
            argv += ["--unixsocket", self.unix, "--unixsocketperm", "700"]
        return argv + self.extra

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again, on the same port after :meth:`stop`); blocks until it
        answers PING. RuntimeError (with its log) if it does not within *timeout*."""
        self.proc = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _ping(self.host, self.port, self.unix):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f"redis-server did not start on {self.url}:\n{log[-2000:]}")
            time.sleep(0.01)

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with *kill*, else SIGTERM) and wait for it."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    def restart(self, down: float = 0.0) -> None:
        """Stop, stay down *down* seconds, start again on the same address."""
        self.stop()
        time.sleep(down)
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
