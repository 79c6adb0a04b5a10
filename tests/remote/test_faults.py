"""Faults: an unreachable server is a ConnectionError naming the URL within the timeout; a
server restarted mid-run is reconnected to and the queue goes on; a message larger than the
server accepts is a ValueError naming both sizes, and the queue stays usable."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support.redis_server import free_port, require_redis, unique

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def R():
    require_redis()
    import ipcfast.remote as R
    return R


def test_a_closed_port_is_a_connectionerror_naming_the_url_within_the_timeout(R):
    url = f"redis://127.0.0.1:{free_port()}/0"        # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{url.split(':')[2]}") as ei:
        R.Queue(url, "x", connect_timeout=0.5)
    took = time.monotonic() - t0
    assert url in str(ei.value) and "0.5 s" in str(ei.value)
    assert 0.5 <= took < 5


def test_a_server_that_never_answers_is_a_connectionerror_within_the_timeout(R):
    with socket.socket() as ls:           # accepts connections (the kernel does) but never replies
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        url = f"redis://127.0.0.1:{ls.getsockname()[1]}/0"
        t0 = time.monotonic()
        with pytest.raises(ConnectionError, match=url):
            R.Queue(url, "x", connect_timeout=0.5)
        assert time.monotonic() - t0 < 5


def test_the_password_is_not_shown_in_the_error(R):
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectionError) as ei:
        R.Queue(url, "x", connect_timeout=0.2)
    assert "s3cret" not in str(ei.value) and "***" in str(ei.value)


def test_a_restarted_server_is_reconnected_to_and_nothing_is_lost(R, server_factory):
    s = server_factory(persist=True)     # the append-only file keeps the data over the restart
    name = unique()
    p = R.Queue(s.url, name)
    c = R.Queue(s.url, name)
    p.put_many(range(500))
    got = c.get_many(max_messages_to_get=200)
    s.restart(down=0.3)
    p.put_many(range(500, 1000))          # the first call after the restart reconnects
    while len(got) < 1000:
        got += c.get_many(timeout=10)
    assert got == list(range(1000))
    # a consumer blocked in get across a restart wakes with the item put after it
    other = unique()
    b = R.Queue(s.url, other)
    waiting = []
    t = threading.Thread(target=lambda: waiting.append(b.get(timeout=30)))
    t.start()
    time.sleep(0.2)
    s.restart(down=0.3)
    R.Queue(s.url, other).put("after")
    t.join(30)
    assert waiting == ["after"]
    for q in (p, c, b):
        q.close()


def test_a_restart_that_lost_the_data_recreates_the_group(R, server_factory):
    s = server_factory()                 # no persistence: the stream and group are gone after
    name = unique()
    q = R.Queue(s.url, name)
    q.put(1)
    assert q.get(timeout=5) == 1
    s.restart()
    q.put(2)
    assert q.get(timeout=5) == 2
    q.close()


def test_a_server_down_longer_than_reconnect_timeout_is_a_connectionerror(R, server_factory):
    s = server_factory()
    q = R.Queue(s.url, unique(), reconnect_timeout=0.5)
    s.stop()
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=s.url):
        q.put(1)
    assert 0.5 <= time.monotonic() - t0 < 10
    q.close()


def test_a_message_larger_than_the_server_accepts_is_a_valueerror_naming_both_sizes(R, server_factory):
    s = server_factory(extra=["--proto-max-bulk-len", "1mb"])
    q = R.Queue(s.url, unique())
    big = b"x" * (2 << 20)
    with pytest.raises(ValueError) as ei:
        q.put(big)
    msg = str(ei.value)
    assert str(1 << 20) in msg and "proto-max-bulk-len" in msg
    assert any(str(n) in msg for n in range(len(big), len(big) + 64))   # the pickled size
    with pytest.raises(ValueError):
        q.put_many([1, big])             # all or nothing
    assert q.qsize() == 0
    q.put(b"y" * (512 << 10))            # under the limit: fine, and the queue is usable
    assert len(q.get(timeout=5)) == 512 << 10
    q.close()
