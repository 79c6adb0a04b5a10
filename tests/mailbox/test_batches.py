"""Mailbox.send_many / recv_many: many messages per call, with the single calls' headers,
ordering, capacities and receipts."""
from __future__ import annotations

import queue
import threading

import pytest

from ipcfast import Mailbox, Message, _pickle


@pytest.fixture
def mailboxes():
    made = []

    def make(*args, **kwargs):
        mb = Mailbox(*args, **kwargs)
        made.append(mb)
        return mb

    yield make
    for mb in made:
        mb.close()


def test_send_many_delivers_every_object_in_order_with_its_header(mailboxes):
    mb = mailboxes(capacity=None, id=77)
    objs = [(i, "x" * (i % 50)) for i in range(300)]
    mb.send_many(objs, type=5, priority=3)
    got = [mb.recv() for _ in objs]
    assert [m.body for m in got] == objs
    assert {(m.type, m.priority, m.sender, m.to) for m in got} == {(5, 3, 77, 0)}
    seqs = [m.seq for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_recv_many_returns_up_to_max_messages_in_delivery_order(mailboxes):
    mb = mailboxes(capacity=None)
    for i in range(10):
        mb.send(i, priority=i % 3)
    got = mb.recv_many(4)
    assert all(isinstance(m, Message) for m in got)
    assert [(m.priority, m.body) for m in got] == [(2, 2), (2, 5), (2, 8), (1, 1)]
    rest = mb.recv_many()
    assert [m.body for m in rest] == [4, 7, 0, 3, 6, 9]
    assert len(mb) == 0


def test_recv_many_headers_match_what_recv_reports(mailboxes):
    mb = mailboxes(capacity=None, id=9)
    mb.send((1, 2), type=-4, priority=7)
    mb.send("x" * 5000)                         # a large body: only ever a batch's first
    mb.send(("y", 1))
    a, = mb.recv_many(1)
    assert (a.body, a.type, a.priority, a.sender, a.to) == ((1, 2), -4, 7, 9, 0)
    assert a.length == len(_pickle.dumps((1, 2)))
    assert a.sent_at > 0
    assert [m.body for m in mb.recv_many(10)] == ["x" * 5000, ("y", 1)]
    mb.send(1)
    mb.send("x" * 5000)
    assert [m.body for m in mb.recv_many(10)] == [1]          # a large one ends the batch
    assert [m.body for m in mb.recv_many(10)] == ["x" * 5000]


def test_recv_many_with_a_type_takes_only_that_type(mailboxes):
    mb = mailboxes(capacity=None)
    for i in range(6):
        mb.send(i, type=i % 2)
    assert [m.body for m in mb.recv_many(10, type=1)] == [1, 3, 5]
    assert [m.body for m in mb.recv_many(10)] == [0, 2, 4]


def test_recv_many_on_an_empty_mailbox_raises_empty(mailboxes):
    mb = mailboxes(capacity=None)
    with pytest.raises(queue.Empty):
        mb.recv_many(block=False)
    with pytest.raises(queue.Empty):
        mb.recv_many(timeout=0.05)


def test_blocking_recv_many_waits_for_a_later_send_many(mailboxes):
    mb = mailboxes(capacity=None)
    t = threading.Timer(0.1, lambda: mb.send_many(["a", "b", "c"]))
    t.start()
    try:
        got = mb.recv_many(10, timeout=10)
        while len(got) < 3:
            got += mb.recv_many(10, timeout=10)
    finally:
        t.join()
    assert [m.body for m in got] == ["a", "b", "c"]


def test_send_many_on_a_full_mailbox_sends_none_of_them(mailboxes):
    mb = mailboxes(capacity=4096)
    mb.send_bytes(b"x" * 3000)
    with pytest.raises(queue.Full):
        mb.send_many([b"y" * 200] * 10, block=False)        # pickled: > 1096 bytes left
    with pytest.raises(queue.Full):
        mb.send_many([b"y" * 200] * 10, timeout=0.05)
    assert len(mb) == 1
    mb.recv_bytes()
    mb.send_many([b"y" * 200] * 10, block=False)
    assert len(mb) == 10 and all(m.body == b"y" * 200 for m in mb.recv_many(20))


def test_blocking_send_many_waits_for_room_for_all(mailboxes):
    mb = mailboxes(capacity=4096)
    mb.send_bytes(b"x" * 3600)                 # 496 bytes left: the 5 pickles need more
    t = threading.Timer(0.1, mb.recv_bytes)
    t.start()
    try:
        mb.send_many([b"z" * 100] * 5, timeout=10)
    finally:
        t.join()
    assert [m.body for m in mb.recv_many(10)] == [b"z" * 100] * 5


def test_send_many_that_can_never_fit_raises_value_error(mailboxes):
    mb = mailboxes(capacity=4096, max_message=512, max_messages=8)
    with pytest.raises(ValueError, match="never fit"):
        mb.send_many(range(9))
    with pytest.raises(ValueError, match="never fit"):
        mb.send_many([b"y" * 500] * 9)
    mb.send_many(range(8))                     # and the mailbox stays usable
    assert [m.body for m in mb.recv_many(8)] == list(range(8))


def test_send_many_of_large_bodies_and_on_a_rendezvous_goes_one_by_one(mailboxes):
    mb = mailboxes(capacity=None)
    big = ["a" * 10000, "b" * 10000]
    mb.send_many(big, priority=2)
    assert [(m.priority, m.body) for m in mb.recv_many(5)] == [(2, big[0])]
    assert mb.recv().body == big[1]
    rv = mailboxes(capacity=0)
    got = []
    t = threading.Thread(target=lambda: got.extend(rv.recv(timeout=10).body for _ in range(2)))
    t.start()
    try:
        rv.send_many([1, 2], timeout=10)
    finally:
        t.join()
    assert got == [1, 2]


def test_send_many_of_large_bodies_that_could_never_fit_together_sends_none(mailboxes):
    mb = mailboxes(capacity=20000)             # 4 x 6000 bytes: more than the capacity
    with pytest.raises(ValueError, match="can never fit"):
        mb.send_many([b"x" * 6000] * 4, block=False)
    assert len(mb) == 0


def test_send_many_of_large_bodies_on_a_full_mailbox_says_how_many_were_sent(mailboxes):
    # bodies over 4 KiB go one send at a time: not all or none, so Full says how many went
    mb = mailboxes(capacity=20000)
    mb.send(b"y" * 6000)                       # room for 2 of the next 3
    with pytest.raises(queue.Full, match="after 2 of 3 messages") as info:
        mb.send_many([b"x" * 6000] * 3, block=False)
    assert info.value.sent == 2 and len(mb) == 3
    assert [mb.recv(block=False).body for _ in range(3)] == [b"y" * 6000] + [b"x" * 6000] * 2
    mb.send_many([b"z" * 6000])                # still usable
    assert mb.recv().body == b"z" * 6000


@pytest.mark.parametrize("kwargs", [{"type": 1 << 40}, {"priority": "high"}])
def test_send_many_with_bad_type_or_priority_raises_value_error(mailboxes, kwargs):
    mb = mailboxes(capacity=None)
    with pytest.raises(ValueError, match="32-bit"):
        mb.send_many([1], **kwargs)
    mb.send_many([1])
    assert mb.recv().body == 1


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                     (True, TypeError)])
def test_recv_many_with_a_bad_count_names_it(mailboxes, bad, exc):
    mb = mailboxes(capacity=None)
    mb.send("kept")
    with pytest.raises(exc, match="max_messages"):
        mb.recv_many(bad)
    with pytest.raises(ValueError, match="if_busy"):
        mb.recv_many(1, if_busy="never")
    with pytest.raises(ValueError, match="32-bit"):
        mb.recv_many(1, type=1 << 40)
    assert [m.body for m in mb.recv_many(1)] == ["kept"]


def test_recv_many_takes_receipted_messages_and_their_senders_get_receipts(mailboxes):
    mb = mailboxes(capacity=None, id=5)
    receipts = []
    senders = [threading.Thread(target=lambda i=i: receipts.append(
        mb.send(i, wait="received", timeout=10))) for i in range(3)]
    for t in senders:
        t.start()
    got = []
    while len(got) < 3:
        got += [m.body for m in mb.recv_many(10, timeout=10)]
    for t in senders:
        t.join()
    assert sorted(got) == [0, 1, 2]
    assert len(receipts) == 3 and all(r.receiver == 5 for r in receipts)


def test_recv_many_and_recv_on_one_mailbox_from_threads_lose_and_repeat_nothing(mailboxes):
    mb = mailboxes(capacity=1 << 16)
    n = 3000
    got, lock, done = [], threading.Lock(), threading.Event()

    def take(many):
        while not done.is_set():
            try:
                ms = mb.recv_many(50, timeout=0.05) if many else [mb.recv(timeout=0.05)]
            except queue.Empty:
                continue
            with lock:
                got.extend(m.body for m in ms)
                if len(got) >= n:
                    done.set()

    ts = [threading.Thread(target=take, args=(k % 2 == 0,)) for k in range(2)]
    for t in ts:
        t.start()
    try:
        for i in range(0, n, 100):
            mb.send_many(range(i, i + 100), timeout=10)
        done.wait(30)
    finally:
        done.set()
        for t in ts:
            t.join()
    assert sorted(got) == list(range(n))


def test_message_header_fields_read_as_sent_and_can_be_reassigned(mailboxes):
    mb = mailboxes(capacity=None, id=3)
    mb.send("x", type=2, priority=-5)
    m, = mb.recv_many(1)
    assert (m.type, m.priority, m.sender, m.to) == (2, -5, 3, 0)
    m.priority, m.sent_at, m.body = 9, 12.5, "y"
    assert (m.type, m.priority, m.sent_at, m.body) == (2, 9, 12.5, "y")
    assert "priority=9" in repr(m)
