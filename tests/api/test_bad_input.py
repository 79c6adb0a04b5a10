"""Bad input to every public blocking method: a clear exception that names the argument,
and the object still works afterwards (issue: NaN busy-looped forever, inf overflowed in
some calls, str/None gave "'<' not supported", huge ints "int too big to convert")."""
from __future__ import annotations

import queue

import pytest

import ipcfast

pytestmark = pytest.mark.timeout(30)

NAN, INF = float("nan"), float("inf")
BAD_TIMEOUTS = [(NAN, ValueError, "NaN"), ("1", TypeError, "timeout"), (b"1", TypeError, "timeout"),
                ([1], TypeError, "timeout")]


@pytest.fixture
def ring():
    with ipcfast.Ring(1 << 16) as r:
        yield r


@pytest.fixture
def mailbox():
    with ipcfast.Mailbox() as m:
        yield m


@pytest.fixture
def pipe():
    a, b = ipcfast.Pipe()
    yield a, b
    a.close()
    b.close()


def _ring_calls(r):
    def claim(t):
        with r.claim(4, timeout=t) as mv:
            mv[:] = b"abcd"

    def view(t):
        with r.view(timeout=t):
            pass
    return {"send_bytes": lambda t: r.send_bytes(b"x", timeout=t),
            "send_many": lambda t: r.send_many([b"x"], timeout=t),
            "recv_bytes": lambda t: r.recv_bytes(timeout=t),
            "recv_many": lambda t: r.recv_many(timeout=t), "claim": claim, "view": view}


@pytest.mark.parametrize("bad, exc, word", BAD_TIMEOUTS, ids=["nan", "str", "bytes", "list"])
@pytest.mark.parametrize("call", list(_ring_calls(None)))
def test_ring_bad_timeout_raises_naming_it_and_the_ring_still_works(ring, call, bad, exc, word):
    ring.send_bytes(b"kept")
    with pytest.raises(exc, match=word):
        _ring_calls(ring)[call](bad)
    assert ring.recv_bytes(timeout=5) == b"kept"


@pytest.mark.parametrize("call", list(_ring_calls(None)))
def test_ring_infinite_timeout_waits_like_none(ring, call):
    ring.send_bytes(b"kept")
    _ring_calls(ring)[call](INF)          # each either sends or takes without waiting


@pytest.mark.parametrize("bad, exc, word", [(1.5, TypeError, "size"), ("4", TypeError, "size"),
                                            (True, TypeError, "size"), (-1, ValueError, "size"),
                                            (1 << 70, ValueError, "size")])
def test_ring_claim_bad_size_names_it(ring, bad, exc, word):
    with pytest.raises(exc, match=word):
        with ring.claim(bad):
            pass
    ring.send_bytes(b"ok")
    assert ring.recv_bytes(timeout=5) == b"ok"


@pytest.mark.parametrize("bad, exc", [(0, ValueError), ("2", TypeError), (2.0, TypeError),
                                      (None, TypeError)])
def test_ring_recv_many_bad_count_names_it(ring, bad, exc):
    ring.send_bytes(b"kept")
    with pytest.raises(exc, match="max_messages"):
        ring.recv_many(bad)
    assert ring.recv_many(1) == [b"kept"]


@pytest.mark.parametrize("bad, exc, word", BAD_TIMEOUTS, ids=["nan", "str", "bytes", "list"])
@pytest.mark.parametrize("call", ["send", "send_bytes", "recv", "recv_bytes", "send-received"])
def test_mailbox_bad_timeout_raises_naming_it_and_the_mailbox_still_works(mailbox, call, bad, exc, word):
    mailbox.send("kept")
    with pytest.raises(exc, match=word):
        if call == "send-received":
            mailbox.send("x", wait="received", timeout=bad)
        elif call.startswith("send"):
            getattr(mailbox, call)(b"x", timeout=bad)
        else:
            getattr(mailbox, call)(timeout=bad)
    assert mailbox.recv(timeout=5).body == "kept"
    assert len(mailbox) == 0


@pytest.mark.parametrize("kw", [dict(capacity=1 << 64), dict(capacity="1"), dict(capacity=True),
                                dict(max_message=2.0), dict(max_messages=1 << 40)])
def test_mailbox_bad_sizes_raise_value_error_naming_the_argument(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        ipcfast.Mailbox(**kw)


@pytest.mark.parametrize("bad, exc, word", BAD_TIMEOUTS, ids=["nan", "str", "bytes", "list"])
def test_connection_poll_bad_timeout_raises_naming_it(pipe, bad, exc, word):
    a, b = pipe
    b.send("kept")
    with pytest.raises(exc, match=word):
        a.poll(bad)
    assert a.poll(INF) and a.recv() == "kept"


@pytest.mark.parametrize("bad, exc, word", BAD_TIMEOUTS, ids=["nan", "str", "bytes", "list"])
@pytest.mark.parametrize("cls", [ipcfast.Queue, ipcfast.JoinableQueue])
def test_queue_bad_timeout_raises_naming_it_and_the_queue_still_works(cls, bad, exc, word):
    with cls() as q:
        q.put("kept")
        for call in (lambda: q.get(timeout=bad), lambda: q.put("x", timeout=bad),
                     lambda: q.get_many(timeout=bad), lambda: q.put_many(["x"], timeout=bad)):
            with pytest.raises(exc, match=word):
                call()
        assert q.get(timeout=INF) == "kept"
        with pytest.raises(queue.Empty):
            q.get(timeout=-1)


@pytest.mark.parametrize("cls", [ipcfast.Ring, ipcfast.Queue, ipcfast.Mailbox])
def test_every_call_on_a_closed_handle_names_the_class_and_the_name(cls):
    h = cls()
    h.close()
    with pytest.raises(ValueError, match=rf"^{cls.__name__} '{h.name}' is closed$"):
        {ipcfast.Ring: lambda: h.send_bytes(b"x"), ipcfast.Queue: lambda: h.put(1),
         ipcfast.Mailbox: lambda: h.send(1)}[cls]()
