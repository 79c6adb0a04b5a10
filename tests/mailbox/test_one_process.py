"""ipcfast.Mailbox within one process (threads where something must wait): naming and
lifetime, message headers, ordering by priority and type, the three capacities, blocking
and non-blocking send and receive with timeouts, receipts, addressing and bad input.

Several processes (pickling under each start method, many senders and receivers, receive
policies, dead peers) are in test_processes.py.
"""
from __future__ import annotations

import json
import os
import pickle
import queue
import threading
import time

import pytest

import ipcfast
from ipcfast import (IncompatibleSegmentError, Mailbox, Message, Receipt, ReceiverBusyError,
                     receiver_id)
from tests.mailbox.workers import ctl, drain
from tests.support.procs import wait_until
from tests.support.shm import new_name
from tests.support.shm import path as shm_path

SLACK = 5.0          # generous upper bound on top of any expected wait (loaded 2-core box)
EARLY = 0.01         # a timed wait may end this much before its timeout (clock rounding)


@pytest.fixture
def mbname():
    """A fresh mailbox name, unlinked at teardown if a test left it."""
    n = new_name("test-mb")
    yield n
    try:
        os.unlink(shm_path(n))
    except FileNotFoundError:
        pass


@pytest.fixture
def mailboxes():
    """Make mailboxes that are closed at teardown: ``make(**kwargs)``."""
    made = []

    def make(*args, **kwargs):
        mb = Mailbox(*args, **kwargs)
        made.append(mb)
        return mb

    def open_(name, **kwargs):
        mb = Mailbox.open(name, **kwargs)
        made.append(mb)
        return mb

    make.open = open_
    yield make
    for mb in made:
        mb.close()


class Later(threading.Thread):
    """Run fn(*args) in a thread after *delay*; .result / .error when joined."""

    def __init__(self, delay, fn, *args, **kwargs):
        super().__init__(daemon=True)
        self.delay, self.fn, self.args, self.kwargs = delay, fn, args, kwargs
        self.result = self.error = None
        self.start()

    def run(self):
        time.sleep(self.delay)
        try:
            self.result = self.fn(*self.args, **self.kwargs)
        except BaseException as e:          # noqa: BLE001 - reported to the test
            self.error = e

    def outcome(self, timeout=30.0):
        self.join(timeout)
        assert not self.is_alive(), "background call did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def receivers_waiting(mb) -> int:
    return ctl(mb).receivers_waiting


# ====================================================================== naming and lifetime

def test_create_makes_a_named_mailbox_that_open_finds(mbname, mailboxes):
    mb = Mailbox.create(mbname)
    try:
        assert mb.name == mbname
        assert os.path.exists(shm_path(mbname))
        other = mailboxes.open(mbname)
        other.send("hi")
        assert mb.recv(timeout=1).body == "hi"
    finally:
        mb.close()


def test_constructor_without_a_name_picks_a_unique_one(mailboxes):
    a, b = mailboxes(), mailboxes()
    assert a.name != b.name
    assert a.name.startswith("ipcf")


def test_create_with_a_taken_name_raises_file_exists_error(mbname, mailboxes):
    mailboxes(mbname)
    with pytest.raises(FileExistsError):
        Mailbox.create(mbname)
    with pytest.raises(FileExistsError):
        Mailbox(mbname, capacity=0)


def test_open_of_an_absent_name_raises_file_not_found_error(mbname):
    with pytest.raises(FileNotFoundError):
        Mailbox.open(mbname)


@pytest.mark.parametrize("bad", ["", "a/b", "/abs", ".hidden", "x" * 300, "sp ace"])
def test_create_with_an_invalid_name_raises_value_error(bad):
    with pytest.raises(ValueError):
        Mailbox.create(bad)


def test_context_manager_closes_the_mailbox(mbname):
    with Mailbox.create(mbname) as mb:
        mb.send(1)
        assert mb.recv(timeout=1).body == 1
    with pytest.raises(ValueError, match="closed"):
        mb.send(2)
    assert "closed" in repr(mb)


def test_close_is_idempotent(mailboxes):
    mb = mailboxes()
    mb.close()
    mb.close()


def test_last_close_removes_the_segment(mbname):
    a = Mailbox.create(mbname)
    b = Mailbox.open(mbname)
    a.close()
    assert os.path.exists(shm_path(mbname)), "removed while still open elsewhere"
    b.send("still works")
    assert b.recv(timeout=1).body == "still works"
    b.close()
    assert not os.path.exists(shm_path(mbname))


def test_unlink_removes_the_name_but_open_handles_keep_working(mbname):
    a = Mailbox.create(mbname)
    b = Mailbox.open(mbname)
    try:
        a.unlink()
        with pytest.raises(FileNotFoundError):
            Mailbox.open(mbname)
        a.send("after unlink")
        assert b.recv(timeout=1).body == "after unlink"
        a.unlink()                               # already gone: no error
        with Mailbox.create(mbname) as fresh:    # the name is free again
            assert len(fresh) == 0
    finally:
        a.close()
        b.close()


def test_pickled_mailbox_reopens_the_same_mailbox_by_name(mailboxes):
    mb = mailboxes()
    clone = pickle.loads(pickle.dumps(mb))
    try:
        assert clone.name == mb.name and clone is not mb
        clone.send("via clone")
        assert mb.recv(timeout=1).body == "via clone"
    finally:
        clone.close()


def test_pickled_mailbox_keeps_an_explicit_id(mailboxes):
    mb = mailboxes()
    named = mailboxes.open(mb.name, id="printer")
    clone = pickle.loads(pickle.dumps(named))
    try:
        assert clone.id == receiver_id("printer")
    finally:
        clone.close()


def test_open_reports_the_creators_settings(mailboxes):
    mb = mailboxes(capacity=8192, max_message=1000, policy="exclusive")
    other = mailboxes.open(mb.name)
    assert (other.capacity, other.max_message, other.policy) == (8192, 1000, "exclusive")
    r = mailboxes(capacity=0)
    assert mailboxes.open(r.name).capacity == 0
    u = mailboxes(capacity=None)
    assert mailboxes.open(u.name).capacity is None


# ====================================================================== messages and headers

def test_send_pickles_objects_and_recv_returns_them_in_a_message(mailboxes):
    mb = mailboxes()
    objs = [None, 0, -1, 3.5, "text", b"bytes", [1, (2, 3)], {"k": {1, 2}}, 10 ** 40]
    for o in objs:
        mb.send(o)
    for o in objs:
        m = mb.recv(timeout=1)
        assert isinstance(m, Message)
        assert m.body == o


def test_message_carries_type_priority_sender_to_seq_length_and_sent_at(mailboxes):
    mb = mailboxes()
    me = mailboxes.open(mb.name, id="someone")
    before = time.monotonic()
    mb.send_bytes(b"12345", type=7, priority=3, to="someone")
    after = time.monotonic()
    m = me.recv_bytes(timeout=1)
    assert m.body == b"12345"
    assert m.type == 7
    assert m.priority == 3
    assert m.sender == os.getpid() == mb.id
    assert m.to == receiver_id("someone")
    assert m.length == 5
    assert m.seq >= 1
    assert before - EARLY <= m.sent_at <= after + EARLY


def test_message_sender_is_the_senders_explicit_id(mailboxes):
    mb = mailboxes()
    sender = mailboxes.open(mb.name, id=4242)
    sender.send("x")
    assert mb.recv(timeout=1).sender == 4242


def test_message_length_is_the_size_of_the_pickled_body(mailboxes):
    mb = mailboxes()
    obj = {"a": list(range(50))}
    mb.send(obj)
    raw = mb.recv_bytes(timeout=1)
    assert raw.length == len(raw.body) > 0
    mb.send(obj)
    assert mb.recv(timeout=1).length == raw.length


def test_recv_bytes_returns_the_raw_bytes_of_any_buffer(mailboxes):
    mb = mailboxes()
    mb.send_bytes(b"abc")
    mb.send_bytes(bytearray(b"def"))
    mb.send_bytes(memoryview(b"xyzghi")[3:])
    mb.send_bytes(b"")
    assert [mb.recv_bytes(timeout=1).body for _ in range(4)] == [b"abc", b"def", b"ghi", b""]


def test_recv_unpickles_what_send_pickled_and_recv_bytes_does_not(mailboxes):
    mb = mailboxes()
    mb.send([1, 2])
    raw = mb.recv_bytes(timeout=1).body
    assert isinstance(raw, bytes) and pickle.loads(raw) == [1, 2]


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 65535, 65536, 65537, 1 << 20, (2 << 20) - 1])
def test_messages_of_any_size_up_to_max_message_round_trip(mailboxes, size):
    # <= 4 KiB are copied under the lock, larger outside it; > 64 KiB exceed recv's scratch
    mb = mailboxes(capacity=4 << 20, max_message=2 << 20)
    body = os.urandom(size)
    mb.send_bytes(body)
    m = mb.recv_bytes(timeout=5)
    assert m.body == body and m.length == size


def json_dumps(obj) -> bytes:
    return json.dumps(obj).encode()


def test_custom_dumps_and_loads_are_used_for_send_and_recv(mailboxes):
    mb = mailboxes(dumps=json_dumps, loads=json.loads)
    mb.send({"a": [1, 2]})
    assert mb.recv_bytes(timeout=1).body == b'{"a": [1, 2]}'
    mb.send_bytes(b'["raw json"]')
    assert mb.recv(timeout=1).body == ["raw json"]


def test_custom_dumps_and_loads_survive_pickling_and_open(mailboxes):
    mb = mailboxes(dumps=json_dumps, loads=json.loads)
    clone = pickle.loads(pickle.dumps(mb))
    opened = mailboxes.open(mb.name, dumps=json_dumps, loads=json.loads)
    try:
        clone.send({"via": "clone"})
        assert mb.recv_bytes(timeout=1).body == b'{"via": "clone"}'
        mb.send_bytes(b"[1]")
        assert opened.recv(timeout=1).body == [1]
    finally:
        clone.close()


def test_seq_is_unique_and_increasing_across_sending_threads(mailboxes):
    mb = mailboxes(capacity=None)
    handles = [mailboxes.open(mb.name) for _ in range(4)]

    def blast(h, k):
        for i in range(200):
            h.send_bytes(b"%d:%d" % (k, i))

    threads = [threading.Thread(target=blast, args=(h, k)) for k, h in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    msgs = [mb.recv_bytes(block=False) for _ in range(800)]
    seqs = [m.seq for m in msgs]
    assert len(set(seqs)) == 800
    assert seqs == sorted(seqs), "same priority must come out in send (seq) order"
    for k in range(4):   # each thread's own messages keep their order
        mine = [int(m.body.split(b":")[1]) for m in msgs if m.body.startswith(b"%d:" % k)]
        assert mine == list(range(200))


def test_len_and_bytes_held_follow_sends_and_receives(mailboxes):
    mb = mailboxes(capacity=1 << 16)
    assert len(mb) == 0 and mb.bytes_held == 0
    mb.send_bytes(b"x" * 100)
    mb.send_bytes(b"y" * 50)
    assert len(mb) == 2 and mb.bytes_held == 150
    mb.recv_bytes(timeout=1)
    assert len(mb) == 1 and mb.bytes_held == 50
    mb.recv_bytes(timeout=1)
    assert len(mb) == 0 and mb.bytes_held == 0


# ====================================================================== ordering and types

def test_higher_priority_is_received_first_and_fifo_within_a_priority(mailboxes):
    mb = mailboxes()
    sent = [(0, "a"), (5, "b"), (-3, "c"), (5, "d"), (10, "e"), (0, "f"), (-3, "g"),
            (2 ** 31 - 1, "max"), (-2 ** 31, "min")]
    for p, body in sent:
        mb.send(body, priority=p)
    got = [mb.recv(timeout=1) for _ in sent]
    assert [m.body for m in got] == ["max", "e", "b", "d", "a", "f", "c", "g", "min"]
    assert [m.priority for m in got] == sorted((p for p, _ in sent), reverse=True)


def test_a_later_higher_priority_message_overtakes_waiting_ones(mailboxes):
    mb = mailboxes()
    for i in range(5):
        mb.send(i)
    assert mb.recv(timeout=1).body == 0
    mb.send("urgent", priority=1)
    assert mb.recv(timeout=1).body == "urgent"
    assert [mb.recv(timeout=1).body for _ in range(4)] == [1, 2, 3, 4]


def test_recv_with_type_selects_only_messages_of_that_type(mailboxes):
    mb = mailboxes()
    for i, t in enumerate([1, 2, 1, 3, 2, 1]):
        mb.send((t, i), type=t)
    assert [mb.recv(type=1, timeout=1).body for _ in range(3)] == [(1, 0), (1, 2), (1, 5)]
    with pytest.raises(queue.Empty):
        mb.recv(type=1, block=False)
    assert mb.recv(type=3, timeout=1).body == (3, 3)
    assert [m.body for m in drain(mb)] == [(2, 1), (2, 4)]


def test_recv_with_type_respects_priority_within_the_type(mailboxes):
    mb = mailboxes()
    mb.send("low", type=4, priority=0)
    mb.send("other type, high", type=5, priority=9)
    mb.send("high", type=4, priority=2)
    m = mb.recv(type=4, timeout=1)
    assert (m.body, m.type, m.priority) == ("high", 4, 2)
    assert mb.recv(timeout=1).body == "other type, high"


def test_recv_with_type_accepts_negative_and_zero_types(mailboxes):
    mb = mailboxes()
    mb.send("neg", type=-5)
    mb.send("zero", type=0)
    assert mb.recv(type=0, timeout=1).body == "zero"
    assert mb.recv(type=-5, timeout=1).body == "neg"


def test_blocking_recv_with_type_ignores_other_types_until_its_type_arrives(mailboxes):
    mb = mailboxes()
    sender = mailboxes.open(mb.name)

    def feed():
        sender.send("wrong", type=1)
        time.sleep(0.3)
        sender.send("right", type=2)

    t = Later(0.1, feed)
    start = time.monotonic()
    m = mb.recv(type=2, timeout=10)
    assert m.body == "right"
    assert time.monotonic() - start >= 0.3
    t.outcome()
    assert mb.recv(block=False).body == "wrong"


# ====================================================================== capacity: rendezvous

def test_rendezvous_non_blocking_send_without_a_waiting_receiver_raises_full(mailboxes):
    mb = mailboxes(capacity=0)
    with pytest.raises(queue.Full):
        mb.send("nobody", block=False)
    with pytest.raises(queue.Empty):
        mb.recv(block=False)
    assert len(mb) == 0


def test_rendezvous_timed_out_send_withdraws_the_message(mailboxes):
    mb = mailboxes(capacity=0)
    start = time.monotonic()
    with pytest.raises(queue.Full):
        mb.send("too late", timeout=0.3)
    assert time.monotonic() - start >= 0.3 - EARLY
    assert len(mb) == 0
    with pytest.raises(queue.Empty):
        mb.recv(timeout=0.3)             # nobody gets it later


def test_rendezvous_send_returns_only_once_a_receiver_took_the_message(mailboxes):
    mb = mailboxes(capacity=0)
    receiver = mailboxes.open(mb.name, id="late")
    r = Later(0.5, receiver.recv, timeout=30)
    start = time.monotonic()
    receipt = mb.send("meet me")
    waited = time.monotonic() - start
    m = r.outcome()
    assert waited >= 0.4, "send returned before any receiver was there"
    assert m.body == "meet me"
    assert isinstance(receipt, Receipt)
    assert receipt.seq == m.seq
    assert receipt.receiver == receiver_id("late")
    assert receipt.receiver_pid == os.getpid()


def test_rendezvous_non_blocking_send_succeeds_when_a_receiver_is_waiting(mailboxes):
    mb = mailboxes(capacity=0)
    receiver = mailboxes.open(mb.name)
    received = []
    stop = threading.Event()

    def take_all():
        while not stop.is_set():
            try:
                received.append(receiver.recv(timeout=0.2).body)
            except queue.Empty:
                pass

    t = threading.Thread(target=take_all)
    t.start()
    delivered = []
    try:
        for attempt in range(30):        # the receiver must pick it up within a short grace
            wait_until(lambda: receivers_waiting(mb) > 0, what="a waiting receiver")
            try:
                mb.send(attempt, block=False)
            except queue.Full:
                continue
            delivered.append(attempt)
            if len(delivered) == 3:
                break
        time.sleep(0.3)                  # anything withdrawn must not turn up late
    finally:
        stop.set()
        t.join(30)
    assert delivered, "no non-blocking rendezvous send ever met the waiting receiver"
    assert received == delivered, "a withdrawn message was delivered, or a delivered one lost"


def test_rendezvous_send_with_many_messages_delivers_each_once_in_order(mailboxes):
    mb = mailboxes(capacity=0)
    receiver = mailboxes.open(mb.name)
    r = Later(0, lambda: [receiver.recv(timeout=10).body for _ in range(50)])
    for i in range(50):
        mb.send(i, timeout=10)
    assert r.outcome() == list(range(50))
    assert len(mb) == 0


# ====================================================================== capacity: bounded

def test_bounded_mailbox_non_blocking_send_on_full_raises_full(mailboxes):
    mb = mailboxes(capacity=8192, max_message=4096)
    mb.send_bytes(b"a" * 4096, block=False)
    mb.send_bytes(b"b" * 4096, block=False)
    assert mb.bytes_held == 8192
    with pytest.raises(queue.Full):
        mb.send_bytes(b"c", block=False)
    assert len(mb) == 2


def test_bounded_mailbox_timed_send_on_full_raises_full_after_the_timeout(mailboxes):
    mb = mailboxes(capacity=8192, max_message=4096)
    mb.send_bytes(b"a" * 4000)
    mb.send_bytes(b"a" * 4000)
    start = time.monotonic()
    with pytest.raises(queue.Full):
        mb.send_bytes(b"b" * 1000, timeout=0.3)
    assert 0.3 - EARLY <= time.monotonic() - start <= 0.3 + SLACK


def test_bounded_mailbox_blocking_send_waits_until_a_receive_frees_room(mailboxes):
    mb = mailboxes(capacity=8192, max_message=4096)
    receiver = mailboxes.open(mb.name)
    mb.send_bytes(b"a" * 4096)
    mb.send_bytes(b"b" * 4096)
    r = Later(0.4, receiver.recv_bytes, timeout=10)
    start = time.monotonic()
    mb.send_bytes(b"c" * 4096)                 # blocks until the receive
    assert time.monotonic() - start >= 0.3
    assert r.outcome().body == b"a" * 4096
    assert [m.body[:1] for m in (mb.recv_bytes(timeout=1), mb.recv_bytes(timeout=1))] == [b"b", b"c"]


def test_bounded_mailbox_counts_bytes_not_messages(mailboxes):
    mb = mailboxes(capacity=4096, max_message=4096)
    for _ in range(40):
        mb.send_bytes(b"x" * 100, block=False)          # 4000 bytes in 40 messages
    with pytest.raises(queue.Full):
        mb.send_bytes(b"x" * 100, block=False)
    mb.send_bytes(b"x" * 96, block=False)               # exactly fills it
    assert mb.bytes_held == 4096


def test_bounded_mailbox_capacity_below_max_message_lowers_max_message(mailboxes):
    mb = mailboxes(capacity=1000)
    assert mb.max_message == 1000
    mb.send_bytes(b"x" * 1000)
    with pytest.raises(ValueError):
        mb.send_bytes(b"x" * 1001)


def test_default_capacity_is_bounded(mailboxes):
    mb = mailboxes()
    assert mb.capacity == 1 << 20
    for _ in range(16):
        mb.send_bytes(b"x" * 65536, block=False)
    with pytest.raises(queue.Full):
        mb.send_bytes(b"x", block=False)


# ====================================================================== capacity: unbounded

def test_unbounded_mailbox_holds_far_more_than_a_bounded_one_and_never_blocks(mailboxes):
    bounded = mailboxes(capacity=1 << 20)
    mb = mailboxes(capacity=None)
    assert mb.capacity is None
    body = b"u" * 1000
    n = 6000                          # 6 MB in 6000 messages: more bytes and slots than bounded
    with pytest.raises(queue.Full):
        for _ in range(n):
            bounded.send_bytes(body, block=False)
    start = time.monotonic()
    for i in range(n):
        mb.send_bytes(b"%06d" % i + body, block=False)
    assert len(mb) == n
    assert mb.bytes_held == n * 1006
    assert time.monotonic() - start < 60
    for i in range(n):
        assert mb.recv_bytes(block=False).body[:6] == b"%06d" % i


@pytest.mark.skipif("libtsan" in os.environ.get("LD_PRELOAD", ""),
                    reason="an unbounded mailbox of 4 MiB messages maps a 1 TiB sparse file, "
                           "which TSan's shadow memory cannot always cover (ENOMEM)")
def test_unbounded_mailbox_accepts_messages_of_a_few_mib(mailboxes):
    mb = mailboxes(capacity=None, max_message=4 << 20)
    body = os.urandom(3 << 20)
    mb.send_bytes(body, block=False)
    assert mb.recv_bytes(timeout=5).body == body


# ====================================================================== blocking / non-blocking / timeouts

CAPACITIES = {"rendezvous": 0, "bounded": 4096, "unbounded": None}
SEND_MODES = {"block": dict(), "nonblock": dict(block=False), "timeout": dict(timeout=0.05)}
RECV_MODES = {"block": dict(), "nonblock": dict(block=False), "timeout": dict(timeout=0.05)}


def _retry(fn, exc, deadline):
    while True:
        try:
            return fn()
        except exc:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cap", CAPACITIES)
@pytest.mark.parametrize("smode", SEND_MODES)
@pytest.mark.parametrize("rmode", RECV_MODES)
def test_every_send_mode_pairs_with_every_receive_mode(mailboxes, cap, smode, rmode):
    """A sender thread and a receiver thread, each using one mode (retrying on Full/Empty
    when it does not block), move every message once and in order."""
    if cap == "rendezvous" and smode == "nonblock" and rmode == "nonblock":
        pytest.skip("a rendezvous needs one side waiting")
    mb = mailboxes(capacity=CAPACITIES[cap], max_message=512)
    receiver = mailboxes.open(mb.name)
    n = 40
    deadline = time.monotonic() + 30
    skw, rkw = SEND_MODES[smode], RECV_MODES[rmode]

    def receive():
        return [_retry(lambda: receiver.recv_bytes(**rkw), queue.Empty, deadline).body
                for _ in range(n)]

    r = Later(0, receive)
    for i in range(n):
        _retry(lambda: mb.send_bytes(b"%03d" % i + b"." * 200, **skw), queue.Full, deadline)
    got = r.outcome()
    assert [g[:3] for g in got] == [b"%03d" % i for i in range(n)]
    assert len(mb) == 0


@pytest.mark.parametrize("cap", CAPACITIES)
def test_non_blocking_recv_on_an_empty_mailbox_raises_empty_at_once(mailboxes, cap):
    mb = mailboxes(capacity=CAPACITIES[cap])
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        mb.recv(block=False)
    with pytest.raises(queue.Empty):
        mb.recv_bytes(block=False, timeout=10)      # timeout ignored when not blocking
    assert time.monotonic() - start < SLACK


@pytest.mark.parametrize("cap", CAPACITIES)
def test_timed_recv_on_an_empty_mailbox_raises_empty_after_the_timeout(mailboxes, cap):
    mb = mailboxes(capacity=CAPACITIES[cap])
    for timeout in (0, 0.25):
        start = time.monotonic()
        with pytest.raises(queue.Empty):
            mb.recv(timeout=timeout)
        assert timeout - EARLY <= time.monotonic() - start <= timeout + SLACK


@pytest.mark.parametrize("cap", CAPACITIES)
def test_timed_recv_returns_a_message_sent_before_the_timeout(mailboxes, cap):
    mb = mailboxes(capacity=CAPACITIES[cap])
    sender = mailboxes.open(mb.name)
    s = Later(0.2, sender.send, "in time", timeout=30)
    start = time.monotonic()
    assert mb.recv(timeout=20).body == "in time"
    assert 0.15 <= time.monotonic() - start < 20
    s.outcome()


def test_timed_send_on_a_full_mailbox_succeeds_when_room_frees_in_time(mailboxes):
    mb = mailboxes(capacity=4096, max_message=4096)
    receiver = mailboxes.open(mb.name)
    mb.send_bytes(b"x" * 4096)
    r = Later(0.2, receiver.recv_bytes, timeout=30)
    start = time.monotonic()
    mb.send_bytes(b"y" * 4096, timeout=20)
    assert 0.15 <= time.monotonic() - start < 20
    assert r.outcome().body == b"x" * 4096


@pytest.mark.parametrize("cap", CAPACITIES)
def test_blocking_recv_waits_for_a_later_send(mailboxes, cap):
    mb = mailboxes(capacity=CAPACITIES[cap])
    sender = mailboxes.open(mb.name)
    s = Later(0.3, sender.send, "late", timeout=30)
    start = time.monotonic()
    assert mb.recv().body == "late"
    assert time.monotonic() - start >= 0.25
    s.outcome()


@pytest.mark.parametrize("cap", CAPACITIES)
@pytest.mark.parametrize("call", ["send", "send_bytes", "recv", "recv_bytes"])
def test_negative_timeout_raises_value_error(mailboxes, cap, call):
    mb = mailboxes(capacity=CAPACITIES[cap])
    with pytest.raises(ValueError):
        if call.startswith("send"):
            getattr(mb, call)(b"x", timeout=-1)
        else:
            getattr(mb, call)(timeout=-0.5)
    assert len(mb) == 0


# ====================================================================== receipts

def test_send_wait_received_returns_a_receipt_naming_receiver_and_seq(mailboxes):
    mb = mailboxes()
    receiver = mailboxes.open(mb.name, id="reader")
    r = Later(0.3, receiver.recv, timeout=30)
    start = time.monotonic()
    receipt = mb.send({"job": 1}, wait="received")
    assert time.monotonic() - start >= 0.25, "returned before the receiver took it"
    m = r.outcome()
    assert isinstance(receipt, Receipt)
    assert receipt.seq == m.seq
    assert receipt.receiver == receiver_id("reader")
    assert receipt.receiver_pid == os.getpid()
    assert receipt.received_at >= m.sent_at


def test_send_without_wait_returns_none_on_a_buffered_mailbox(mailboxes):
    mb = mailboxes()
    assert mb.send("x") is None
    assert mb.send_bytes(b"y") is None


def test_send_wait_received_timing_out_withdraws_the_message(mailboxes):
    mb = mailboxes()
    start = time.monotonic()
    with pytest.raises(queue.Full):
        mb.send("unread", wait="received", timeout=0.3)
    assert time.monotonic() - start >= 0.3 - EARLY
    assert len(mb) == 0 and mb.bytes_held == 0
    with pytest.raises(queue.Empty):
        mb.recv(timeout=0.2)


def test_send_wait_received_non_blocking_without_receiver_raises_full(mailboxes):
    mb = mailboxes()
    with pytest.raises(queue.Full):
        mb.send("unread", wait="received", block=False)
    with pytest.raises(queue.Empty):
        mb.recv(block=False)


def test_send_wait_received_large_message_gets_its_receipt(mailboxes):
    mb = mailboxes(capacity=1 << 20, max_message=1 << 19)
    receiver = mailboxes.open(mb.name, id=77)
    body = os.urandom(1 << 19)
    r = Later(0.2, receiver.recv_bytes, timeout=30)
    receipt = mb.send_bytes(body, wait="received", timeout=30)
    m = r.outcome()
    assert m.body == body
    assert (receipt.receiver, receipt.seq) == (77, m.seq)
    assert mb.bytes_held == 0


@pytest.mark.parametrize("wait", ["delivered", "", True, 1])
def test_send_with_an_unknown_wait_raises_value_error(mailboxes, wait):
    mb = mailboxes()
    with pytest.raises(ValueError):
        mb.send("x", wait=wait)
    assert len(mb) == 0


# ====================================================================== addressing

def test_default_id_is_the_process_id(mailboxes):
    assert mailboxes().id == os.getpid()


def test_named_id_is_hashed_with_receiver_id(mailboxes):
    mb = mailboxes()
    printer = mailboxes.open(mb.name, id="printer")
    assert printer.id == receiver_id("printer")
    assert mailboxes.open(mb.name, id=12345).id == 12345


def test_receiver_id_is_stable_positive_and_distinct_for_distinct_names():
    a = receiver_id("printer")
    assert a == receiver_id("printer")
    assert 0 < a < 1 << 63
    assert len({receiver_id(f"worker-{i}") for i in range(1000)}) == 1000
    assert receiver_id(7) == 7


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (1 << 63, ValueError),
                                      ("", ValueError), (True, TypeError), (1.5, TypeError),
                                      (b"printer", TypeError), (None, TypeError)])
def test_receiver_id_rejects_bad_ids(bad, exc):
    with pytest.raises(exc):
        receiver_id(bad)


def test_send_to_an_id_delivers_only_to_that_receiver(mailboxes):
    mb = mailboxes()
    printer = mailboxes.open(mb.name, id="printer")
    scanner = mailboxes.open(mb.name, id="scanner")
    mb.send("for printer", to="printer")
    with pytest.raises(queue.Empty):
        scanner.recv(block=False)
    with pytest.raises(queue.Empty):
        mb.recv(block=False)                     # the sender's own id (pid) is not "printer"
    m = printer.recv(block=False)
    assert (m.body, m.to) == ("for printer", receiver_id("printer"))


def test_recv_takes_messages_addressed_to_it_or_to_anyone_in_order(mailboxes):
    mb = mailboxes()
    printer = mailboxes.open(mb.name, id="printer")
    other = mailboxes.open(mb.name, id="other")
    mb.send("anyone-1")
    mb.send("printer-1", to="printer")
    mb.send("other-1", to="other")
    mb.send("anyone-2", to=0)
    mb.send("printer-2", to=receiver_id("printer"))
    assert [m.body for m in drain(printer)] == ["anyone-1", "printer-1", "anyone-2", "printer-2"]
    assert [m.body for m in drain(other)] == ["other-1"]


def test_addressed_message_waits_for_its_receiver_behind_others(mailboxes):
    mb = mailboxes()
    late = mailboxes.open(mb.name, id="late")
    mb.send("for late", to="late", priority=5)
    mb.send("for anyone")
    assert mb.recv(block=False).body == "for anyone"   # skips the one not for it
    assert late.recv(block=False).body == "for late"


def test_send_to_a_pid_reaches_a_receiver_with_the_default_id(mailboxes):
    mb = mailboxes()
    mb.send("to my pid", to=os.getpid())
    assert mb.recv(block=False).to == os.getpid()


def test_blocking_recv_of_addressed_receiver_ignores_messages_for_others(mailboxes):
    mb = mailboxes()
    printer = mailboxes.open(mb.name, id="printer")

    def feed():
        mb.send("not yours", to="scanner")
        time.sleep(0.3)
        mb.send("yours", to="printer")

    t = Later(0.1, feed)
    start = time.monotonic()
    assert printer.recv(timeout=10).body == "yours"
    assert time.monotonic() - start >= 0.3
    t.outcome()
    assert len(mb) == 1


# ====================================================================== policies (one process)

def test_shared_policy_lets_every_handle_receive(mailboxes):
    mb = mailboxes(policy="shared")
    other = mailboxes.open(mb.name)
    mb.send(1)
    mb.send(2)
    assert other.recv(block=False).body == 1
    assert mb.recv(block=False).body == 2
    assert mb.release() is False          # nothing to give up under "shared"


def test_exclusive_policy_release_reports_whether_the_right_was_held(mailboxes):
    mb = mailboxes(policy="exclusive")
    assert mb.release() is False
    with pytest.raises(queue.Empty):
        mb.recv(block=False)               # asking for a message takes the right
    assert mb.release() is True
    assert mb.release() is False


@pytest.mark.parametrize("bad", ["raise", "ignore", None, 0])
def test_recv_with_an_unknown_if_busy_raises_value_error(mailboxes, bad):
    mb = mailboxes(policy="exclusive")
    with pytest.raises(ValueError):
        mb.recv(block=False, if_busy=bad)


# ====================================================================== bad input

def test_body_over_max_message_raises_value_error_naming_both_sizes(mailboxes):
    mb = mailboxes(max_message=1000)
    with pytest.raises(ValueError) as e:
        mb.send_bytes(b"x" * 1001)
    assert "1001" in str(e.value) and "1000" in str(e.value)
    with pytest.raises(ValueError) as e:
        mb.send(b"x" * 5000)                  # pickled: a little over 5000
    assert "1000" in str(e.value)
    assert len(mb) == 0 and mb.bytes_held == 0


@pytest.mark.parametrize("policy", ["fifo", "SHARED", "", None, 0, 1])
def test_unknown_policy_raises_value_error(policy):
    with pytest.raises(ValueError):
        Mailbox(policy=policy)


@pytest.mark.parametrize("capacity", [-1, -4096, 1.5, 4096.0, "big", True, False, [1]])
def test_unknown_capacity_raises_value_error(capacity):
    with pytest.raises(ValueError):
        Mailbox(capacity=capacity)


@pytest.mark.parametrize("kw", [dict(max_message=0), dict(max_message=-1), dict(max_message=1.0),
                                dict(max_message=(1 << 30) + 1), dict(max_messages=0),
                                dict(max_messages=-3), dict(max_messages=2.0)])
def test_bad_sizes_raise_value_error(kw):
    with pytest.raises(ValueError):
        Mailbox(**kw)


@pytest.mark.parametrize("field, value", [("type", 1 << 31), ("type", -(1 << 31) - 1), ("type", 1.0),
                                          ("type", "1"), ("priority", 1 << 31), ("priority", "1")])
def test_type_and_priority_outside_int32_raise_value_error(mailboxes, field, value):
    mb = mailboxes()
    with pytest.raises(ValueError):
        mb.send("x", **{field: value})
    assert len(mb) == 0


def test_recv_type_outside_int32_raises_value_error(mailboxes):
    mb = mailboxes()
    with pytest.raises(ValueError):
        mb.recv(type=1 << 31, block=False)


def test_unpicklable_object_raises_in_send_and_sends_nothing(mailboxes):
    mb = mailboxes()
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        mb.send(lambda: None)
    assert len(mb) == 0


def test_opening_a_ring_as_a_mailbox_raises_incompatible_segment_error():
    ring = ipcfast.Ring(4096)
    try:
        with pytest.raises(IncompatibleSegmentError) as e:
            Mailbox.open(ring.name)
        assert isinstance(e.value, ValueError)
        with pytest.raises(FileExistsError):
            Mailbox.create(ring.name)
    finally:
        ring.close()


def test_opening_a_queue_as_a_mailbox_raises_incompatible_segment_error():
    q = ipcfast.Queue()
    try:
        with pytest.raises(IncompatibleSegmentError):
            Mailbox.open(q.name)
    finally:
        q.close()


def test_opening_a_mailbox_as_a_ring_raises_incompatible_segment_error(mailboxes):
    mb = mailboxes()
    with pytest.raises(IncompatibleSegmentError):
        ipcfast.Ring.attach(mb.name)


def test_opening_a_foreign_file_raises_incompatible_segment_error(mbname):
    with open(shm_path(mbname), "wb") as f:
        f.write(b"not a mailbox".ljust(8192, b"\0"))
    with pytest.raises(IncompatibleSegmentError):
        Mailbox.open(mbname)


CLOSED_CALLS = {
    "send": lambda mb: mb.send(1),
    "send_bytes": lambda mb: mb.send_bytes(b"1"),
    "send_wait": lambda mb: mb.send(1, wait="received", block=False),
    "recv": lambda mb: mb.recv(block=False),
    "recv_bytes": lambda mb: mb.recv_bytes(timeout=1),
    "len": lambda mb: len(mb),
    "bytes_held": lambda mb: mb.bytes_held,
    "release": lambda mb: mb.release(),
    "pickle": lambda mb: pickle.dumps(mb),
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS), ids=list(CLOSED_CALLS))
def test_using_a_closed_mailbox_raises_value_error_mentioning_closed(call):
    mb = Mailbox()
    mb.close()
    with pytest.raises(ValueError, match="closed"):
        CLOSED_CALLS[call](mb)


def test_exclusive_error_type_is_an_ipcfast_error():
    assert issubclass(ReceiverBusyError, ipcfast.IpcfastError)
    assert issubclass(ipcfast.ReceiverDiedError, ipcfast.IpcfastError)
