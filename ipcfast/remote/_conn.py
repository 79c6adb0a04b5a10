"""The connection of a remote queue: made from a URL, checked at open within a timeout,
and every call retried across dropped connections and server restarts until a deadline.

Errors leave here as the builtin ``ConnectionError`` naming the URL (password hidden), not
as redis-py's own exception classes, so that callers need not import ``redis``.
"""
from __future__ import annotations

import time
import urllib.parse
from typing import Any, Callable, Optional

try:
    import redis
    from redis import exceptions as RX
except ImportError as exc:          # pragma: no cover - the extra is not installed
    raise ImportError("ipcfast.remote needs redis-py: pip install 'ipcfast[redis]'") from exc

#: the server's default proto-max-bulk-len, used when CONFIG GET is not allowed (managed Redis)
DEFAULT_MAX_BULK = 512 * 1024 * 1024

_RETRY = (RX.ConnectionError, RX.TimeoutError, RX.BusyLoadingError, RX.TryAgainError,
          ConnectionError, TimeoutError)


def redact(url: str) -> str:
    """*url* with its password replaced by ``***``."""
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if u.password is None:
        return url
    netloc = u.netloc.replace(":" + u.password + "@", ":***@", 1)
    return urllib.parse.urlunsplit(u._replace(netloc=netloc))


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _RETRY):
        return True
    # a server shutting down or still loading its data answers with these
    return isinstance(exc, RX.ResponseError) and str(exc).startswith(("LOADING", "MASTERDOWN"))


class Link:
    """A redis-py client for *url* and the retry loop every queue call goes through.

    ``connect_timeout`` bounds :meth:`open` (the first contact); ``reconnect_timeout``
    bounds how long one call keeps retrying while the server is unreachable (restarting)
    before it raises ConnectionError; ``io_timeout`` is the socket timeout of one reply."""

    def __init__(self, url: str, connect_timeout: float, reconnect_timeout: float,
                 io_timeout: float) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        for what, v in (("connect_timeout", connect_timeout), ("reconnect_timeout", reconnect_timeout),
                        ("io_timeout", io_timeout)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{what} must be a number > 0, not {v!r}")
        self.url = url
        self.shown = redact(url)
        self.connect_timeout = float(connect_timeout)
        self.reconnect_timeout = float(reconnect_timeout)
        self.io_timeout = float(io_timeout)
        try:
            self.client = redis.Redis.from_url(
                url, socket_connect_timeout=min(self.connect_timeout, self.io_timeout),
                socket_timeout=self.io_timeout, health_check_interval=0, retry_on_timeout=False)
        except ValueError as exc:
            raise ValueError(f"url {self.shown!r} is not a Redis URL: {exc}") from None
        self.max_bulk = DEFAULT_MAX_BULK

    def open(self, setup: Callable[[Any], None]) -> None:
        """PING and run *setup(client)* within connect_timeout, with a client whose every
        socket operation is bounded by what is left of it; ConnectionError naming the URL
        when the server cannot be reached in time."""
        deadline = time.monotonic() + self.connect_timeout
        last: Optional[BaseException] = None
        delay = 0.01
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            probe = redis.Redis.from_url(self.url, socket_connect_timeout=left,
                                         socket_timeout=left, health_check_interval=0)
            try:
                probe.ping()
                setup(probe)
                self.max_bulk = self._max_bulk(probe)
                return
            except Exception as exc:
                if not _retryable(exc):
                    raise
                last = exc
            finally:
                probe.close()
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.25)
        raise ConnectionError(f"cannot reach Redis at {self.shown} within "
                              f"{self.connect_timeout:g} s: {last}") from last

    @staticmethod
    def _max_bulk(client) -> int:
        try:
            v = client.config_get("proto-max-bulk-len").get("proto-max-bulk-len")
            return int(v) if v else DEFAULT_MAX_BULK
        except (RX.ResponseError, ValueError):          # CONFIG is disabled (managed Redis)
            return DEFAULT_MAX_BULK

    def call(self, fn: Callable[[], Any], deadline: Optional[float] = None) -> Any:
        """fn() retried while the server is unreachable, until reconnect_timeout (or
        *deadline*, a monotonic time, if later) has passed: then ConnectionError."""
        try:
            return fn()
        except Exception as exc:
            if not _retryable(exc):
                raise
            last: BaseException = exc
        end = max(time.monotonic() + self.reconnect_timeout, deadline or 0.0)
        delay = 0.01
        while time.monotonic() < end:
            time.sleep(min(delay, max(0.0, end - time.monotonic())))
            delay = min(delay * 2, 0.25)
            try:
                out = fn()
            except Exception as exc:
                if not _retryable(exc):
                    raise
                last = exc
                continue
            self.max_bulk = self._max_bulk(self.client)      # the server may have changed
            return out
        raise ConnectionError(f"lost Redis at {self.shown} and could not reconnect within "
                              f"{self.reconnect_timeout:g} s: {last}") from last

    def close(self) -> None:
        self.client.close()
