"""The child side of the kill-fuzz (tests/stress/test_kill_fuzz.py): the messages, the
board the children report on, and the producer and consumer loops.

* **Messages** carry a 16-byte header (producer id, sequence number, payload length,
  CRC32 of those three and the payload) and a payload of random length (some over 4 KiB,
  a few over 16 KiB) that is a slice of a fixed pseudo-random blob chosen from the fuzz
  seed, the producer and the sequence number: a consumer can tell a torn message and also
  work out *where* it is torn (first wrong byte, zeroed tail).
* **The board** is a small file mapped by every process of a run (parent and children,
  any start method): per worker one row of int64 fields written only by that worker (its
  pid, whether it is inside a send/receive and since when, its count of messages, how it
  ended; but F_STOP, which the parent writes to stop that one worker), plus a few flags
  written by the parent (stop the producers, stop the consumers). A worker SIGKILLed anywhere leaves its row as it was at that instant, which is
  what the checker reads.
* **Logs**: each worker appends fixed-size records to its own file with one ``write`` each
  (a consumer: every message it received and its verdict; a producer: every send whose
  outcome was not plain success, and receipts), and writes readable details of anything
  odd (a torn message, an unexpected exception) to a ``.txt`` beside it.

Every blocking call a worker makes has a timeout (Pipe's ``send_bytes`` has none: the
parent watches it instead), and the worker marks the call on the board before and after,
so the parent can tell a call that overstays its timeout (a hang) from a worker that is
simply waiting.

Imports only the standard library and ipcfast (spawn children import it).
"""
from __future__ import annotations

import json
import mmap
import os
import pickle
import pickletools
import queue
import random
import struct
import time
import traceback
import zlib
from typing import Callable, List, Optional, Tuple

import ipcfast

# ---------------------------------------------------------------- messages

HDR = struct.Struct("<IIII")           # producer, seq, payload length, crc32
_BLOB = random.Random(0x6B696C6C).randbytes(1 << 18)
_M64 = (1 << 64) - 1


def _mix(*words: int) -> int:
    """A 64-bit hash of *words* (splitmix64 steps): cheap, and the same in every process."""
    h = 0x9E3779B97F4A7C15
    for w in words:
        h = (h ^ (w & _M64)) * 0xBF58476D1CE4E5B9 & _M64
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _M64
        h ^= h >> 29
    return h


def payload_of(seed: int, producer: int, seq: int, big: int) -> bytes:
    """The payload of message *seq* of *producer*: its length is drawn from 55% under
    256 B, 25% under 4 KiB, 15% 4-16 KiB, 5% 16 KiB..*big* bytes (with *big* up to 4 KiB:
    55% under 256 B, 45% 256 B..*big*); its bytes are a slice of the blob."""
    h = _mix(seed, producer, seq)
    pick, h = h % 100, h // 100
    if pick < 55:
        n = h % 256
    elif big <= 4096:
        n = 256 + h % (big - 256)
    elif pick < 80:
        n = 256 + h % (4096 - 256)
    elif pick < 95:
        n = 4096 + h % (16384 - 4096)
    else:
        n = 16384 + h % max(1, big - 16384)
    h //= 1 << 17
    off = h % (len(_BLOB) - n) if n < len(_BLOB) else 0
    return _BLOB[off:off + n]


def make_message(seed: int, producer: int, seq: int, big: int) -> bytes:
    """Header + payload of message *seq* of *producer*."""
    body = payload_of(seed, producer, seq, big)
    head = struct.pack("<III", producer, seq, len(body))
    return HDR.pack(producer, seq, len(body), zlib.crc32(body, zlib.crc32(head))) + body


# verdicts of a received message
OK, TORN, GARBLED = 0, 1, 2        # GARBLED: not even the header/encoding can be trusted


def check_message(data: bytes, seed: int, big: int, max_producer: int) -> Tuple[int, int, int, dict]:
    """(verdict, producer, seq, details) of a received message. TORN keeps the producer and
    seq from the header when they are plausible (so the message still counts as received
    for the loss and duplicate checks); the details say where the bytes go wrong."""
    if len(data) < HDR.size:
        return GARBLED, -1, -1, {"why": "shorter than the header", "length": len(data)}
    producer, seq, n, crc = HDR.unpack_from(data)
    body = data[HDR.size:]
    head = struct.pack("<III", producer, seq, n)
    if len(body) == n and zlib.crc32(body, zlib.crc32(head)) == crc:
        return OK, producer, seq, {}
    details = {"producer": producer, "seq": seq, "header_length": n, "length": len(body)}
    if producer >= max_producer or seq >= 1 << 30:
        details["why"] = "header garbled"
        return GARBLED, -1, -1, details
    want = payload_of(seed, producer, seq, big)
    details["expected_length"] = len(want)
    bad = next((i for i, (a, b) in enumerate(zip(body, want)) if a != b), None)
    if bad is None and len(body) != len(want):
        bad = min(len(body), len(want))
    details["why"] = "wrong length" if len(body) != n else "crc mismatch"
    details["first_bad_byte"] = bad
    if bad is not None:
        tail = body[bad:]
        details["zero_from_first_bad"] = bool(tail) and tail.count(0) == len(tail)
        details["first_zero_run"] = _first_zero_run(body)
    return TORN, producer, seq, details


def _first_zero_run(body: bytes, run: int = 64) -> Optional[int]:
    """Offset of the first run of *run* zero bytes (the blob has none that long)."""
    at = body.find(bytes(run))
    return at if at >= 0 else None


# ---------------------------------------------------------------- the board

G_STOP_PRODUCERS, G_STOP_CONSUMERS = 0, 1
GLOBALS = 8
# per-worker fields
F_PID, F_ROLE, F_STATE, F_CALL_START, F_CALL_LIMIT, F_COUNT, F_SEQ, F_READY, F_END, F_END_NS = range(10)
# F_BATCH: a batch producer's batch being sent (its first seq is F_SEQ), a batch consumer's
# max_messages of the receive in progress; 0 for the one-message kinds (one message)
F_BATCH = 10
F_STOP = 15             # written by the parent: stop this one worker
FIELDS = 16
# F_STATE: IDLE between calls, IN_CALL inside a send/receive (from just before the call to
# just after its result was recorded: a consumer killed IN_CALL may have held a message)
IDLE, IN_CALL = 0, 1
# F_END: how the worker ended on its own
END_NONE, END_STOPPED, END_EOF, END_BROKEN, END_ERROR = 0, 1, 2, 3, 4
PRODUCER, CONSUMER = 1, 2


class Board:
    """The shared table of a run: ``GLOBALS`` flags, then ``FIELDS`` int64 per worker slot.
    Every field has one writer (the parent for the flags, worker *slot* for its row), and
    aligned 8-byte stores are atomic, so nobody locks."""

    def __init__(self, path: str, slots: Optional[int] = None) -> None:
        self.path = path
        if slots is not None:                       # the parent creates it
            with open(path, "wb") as f:
                f.truncate(8 * (GLOBALS + FIELDS * slots))
        fd = os.open(path, os.O_RDWR)
        try:
            self._mm = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        self.v = memoryview(self._mm).cast("q")
        self.slots = (len(self.v) - GLOBALS) // FIELDS

    def get(self, slot: int, field: int) -> int:
        return self.v[GLOBALS + slot * FIELDS + field]

    def set(self, slot: int, field: int, value: int) -> None:
        self.v[GLOBALS + slot * FIELDS + field] = value

    def flag(self, which: int) -> int:
        return self.v[which]

    def raise_flag(self, which: int, value: int = 1) -> None:
        self.v[which] = value

    def row(self, slot: int) -> List[int]:
        base = GLOBALS + slot * FIELDS
        return list(self.v[base:base + FIELDS])


# ---------------------------------------------------------------- logs

# consumer record: producer, seq, verdict, length, pid of the process (the receiver pid a
# receipt names), when the receive call began and when it was logged (monotonic ns);
# producer record: seq, outcome, 0, 0, receiver pid of a receipt, 0, 0
REC = struct.Struct("<iiiiqqq")
# producer outcomes (logged only when not plain success, and for receipts)
SENT, RECEIPT, RECEIVER_DIED, WITHDRAWN = 0, 1, 2, 3


def log_path(logdir: str, slot: int, ext: str = "log") -> str:
    return os.path.join(logdir, f"w{slot}.{ext}")


def read_log(logdir: str, slot: int) -> List[Tuple[int, int, int, int, int]]:
    """Every whole record worker *slot* logged, in order."""
    try:
        with open(log_path(logdir, slot), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    n = len(raw) // REC.size
    return [REC.unpack_from(raw, i * REC.size) for i in range(n)]


def read_notes(logdir: str, slot: int) -> List[dict]:
    """The details worker *slot* wrote (torn messages, exceptions)."""
    try:
        with open(log_path(logdir, slot, "txt")) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]
    except FileNotFoundError:
        return []


def _note(logdir: str, slot: int, **what) -> None:
    with open(log_path(logdir, slot, "txt"), "a") as f:
        f.write(json.dumps(what) + "\n")


# ---------------------------------------------------------------- the classes' calls

#: seconds a producer's send / a consumer's receive waits before it returns empty-handed
SEND_TIMEOUT = 1.0
RECV_TIMEOUT = 0.5
RECEIPT_TIMEOUT = 5.0
#: what the parent allows a call without a timeout of its own (Pipe's send_bytes)
UNTIMED = 10.0


def sender(kind: str, obj) -> Tuple[Callable[[bytes], Tuple[int, int]], float]:
    """(send, timeout): ``send(msg)`` returns (outcome, receiver pid); raises queue.Full
    when nothing was sent (full, try again)."""
    if kind == "queue":
        def send(msg):
            obj.put(msg, timeout=SEND_TIMEOUT)
            return SENT, 0
        return send, SEND_TIMEOUT
    if kind == "ring":
        def send(msg):
            obj.send_bytes(msg, timeout=SEND_TIMEOUT)
            return SENT, 0
        return send, SEND_TIMEOUT
    if kind == "mailbox":
        def send(msg):
            obj.send(msg, timeout=SEND_TIMEOUT)
            return SENT, 0
        return send, SEND_TIMEOUT
    if kind == "mailbox-fast":           # the fast path: no timeout, no receipt, to anyone
        def send(msg):
            obj.send(msg, block=False)
            return SENT, 0
        return send, SEND_TIMEOUT
    if kind == "mailbox-receipts":
        def send(msg):
            try:
                r = obj.send(msg, wait="received", timeout=RECEIPT_TIMEOUT)
            except ipcfast.ReceiverDiedError:
                return RECEIVER_DIED, 0
            except queue.Full:          # not posted in time, or withdrawn: not delivered
                return WITHDRAWN, 0
            return RECEIPT, r.receiver_pid
        return send, RECEIPT_TIMEOUT
    if kind == "pipe":
        def send(msg):
            obj.send_bytes(msg)          # no timeout: BrokenPipeError ends the writer
            return SENT, 0
        return send, UNTIMED
    if kind == "mailbox-batch":          # a list of messages: all of them sent, or none
        def send(msgs):
            obj.send_many(msgs, timeout=SEND_TIMEOUT)
            return SENT, 0
        return send, SEND_TIMEOUT
    raise ValueError(kind)


#: the kinds whose producers send batches and consumers receive them (of 1..MAX_BATCH)
BATCH_KINDS = ("mailbox-batch",)
MAX_BATCH = 64


def batch_receiver(kind: str, obj) -> Tuple[Callable[[int], list], float]:
    """(take, timeout) of a batch kind: ``take(n)`` receives up to *n* messages (waiting
    for the first; queue.Empty after the timeout) and returns one callable per message,
    which returns what ``recv()`` of :func:`receiver` does (or raises _Undecodable).
    AssertionError if the batch breaks what its call promises (the worker then fails)."""
    if kind == "mailbox-batch":          # the Mailbox is made with loads=bytes: we unpickle
        def take(n):
            msgs = obj.recv_many(n, timeout=RECV_TIMEOUT)
            # in delivery order (one priority: increasing seq), each header's length its body's
            seqs = [m.seq for m in msgs]
            if not 0 < len(msgs) <= n or any(a >= b for a, b in zip(seqs, seqs[1:])) or \
                    any(m.length != len(m.body) for m in msgs):
                raise AssertionError(f"recv_many({n}) returned {len(msgs)} messages, seqs {seqs}, "
                                     f"lengths {[(m.length, len(m.body)) for m in msgs]}")
            return [lambda b=m.body: _unpickle(b) for m in msgs]
        return take, RECV_TIMEOUT
    raise ValueError(kind)


def receiver(kind: str, obj) -> Tuple[Callable[[], Tuple[bytes, int, Optional[str]]], float]:
    """(recv, timeout): ``recv()`` returns (message bytes, offset of the message in the body
    the object carried, pickle error or None); raises queue.Empty after the timeout,
    EOFError at a pipe's end, or _Undecodable."""
    if kind == "queue":                  # the Queue is made with loads=bytes: we unpickle
        return (lambda: _unpickle(obj.get(timeout=RECV_TIMEOUT))), RECV_TIMEOUT
    if kind == "ring":
        return (lambda: (obj.recv_bytes(timeout=RECV_TIMEOUT), 0, None)), RECV_TIMEOUT
    if kind in ("mailbox", "mailbox-receipts", "mailbox-batch"):   # (the parent's drain)
        return (lambda: _unpickle(obj.recv_bytes(timeout=RECV_TIMEOUT).body)), RECV_TIMEOUT
    if kind == "mailbox-fast":
        def recv():
            try:
                return _unpickle(obj.recv_bytes(block=False).body)
            except queue.Empty:
                time.sleep(0.001)        # (a poll, not a spin: the fuzz shares 2 cores)
                raise
        return recv, RECV_TIMEOUT
    if kind == "pipe":
        def recv():
            if not obj.poll(RECV_TIMEOUT):
                raise queue.Empty
            return obj.recv_bytes(), 0, None
        return recv, RECV_TIMEOUT
    raise ValueError(kind)


class _Undecodable(Exception):
    """The body neither unpickles nor holds a recognisable bytes object: torn beyond
    recognition."""


_LEN_FIELD = {"SHORT_BINBYTES": 1, "BINBYTES": 4, "BINBYTES8": 8}


def _unpickle(raw: bytes) -> Tuple[bytes, int, Optional[str]]:
    """(message, its offset in *raw*, None) from a pickled bytes object; when *raw* does
    not unpickle, the bytes object is dug out of the pickle opcodes (so a torn message can
    still be located and measured) and the pickle error comes third."""
    try:
        obj = pickle.loads(raw)
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
    else:
        if isinstance(obj, bytes):
            return obj, len(raw) - len(obj) - 2, None   # (MEMOIZE, STOP follow the data)
        err = f"unpickled a {type(obj).__name__}, not bytes"
    try:
        for op, arg, pos in pickletools.genops(raw):
            if isinstance(arg, bytes) and op.name in _LEN_FIELD:
                return arg, pos + 1 + _LEN_FIELD[op.name], err
    except Exception:
        pass
    zeros = raw.count(0)
    raise _Undecodable(f"{err}; {len(raw)} bytes, {zeros} of them zero, first zero run of 64 at "
                       f"{_first_zero_run(raw)}")


def _verdict(data: bytes, at: int, pickle_error: Optional[str], seed: int, big: int,
             max_producer: int) -> Tuple[int, int, int, dict]:
    """check_message of a message a consumer got (from the body's offset *at*), TORN too
    when its payload is intact but the pickle around it is not."""
    verdict, p, s, details = check_message(data, seed, big, max_producer)
    if pickle_error and verdict == OK:
        verdict = TORN
        n = len(data) - HDR.size
        details = {"producer": p, "seq": s, "length": n, "expected_length": n,
                   "why": "payload intact, pickle framing broken"}
    if verdict != OK:
        details.update(pickle_error=pickle_error, data_offset_in_body=at)
        if details.get("first_bad_byte") is not None:
            details["first_bad_byte_of_body"] = at + HDR.size + details["first_bad_byte"]
    return verdict, p, s, details


def _begin(board: Board, slot: int, limit: float) -> None:
    board.set(slot, F_STATE, IN_CALL)
    board.set(slot, F_CALL_LIMIT, int(limit * 1e9))
    board.set(slot, F_CALL_START, time.monotonic_ns())


def _end(board: Board, slot: int) -> None:
    board.set(slot, F_CALL_START, 0)
    board.set(slot, F_STATE, IDLE)


def _finish(board: Board, slot: int, how: int) -> None:
    board.set(slot, F_END_NS, time.monotonic_ns())
    board.set(slot, F_END, how)


def _started(board: Board, slot: int, role: int) -> None:
    board.set(slot, F_ROLE, role)
    board.set(slot, F_PID, os.getpid())
    board.set(slot, F_READY, time.monotonic_ns())


def _drop_other_end(kind: str, obj, other) -> None:
    """A pipe child closes the end it inherited but does not use (as with
    multiprocessing.Pipe), so that the peer can see EOF / BrokenPipeError."""
    if kind == "pipe" and other is not None:
        other.close()


# ---------------------------------------------------------------- the workers

def producer(kind: str, obj, board_path: str, slot: int, logdir: str, seed: int, big: int,
             other=None) -> None:
    """Send messages 0, 1, 2, ... of producer *slot* until the parent raises the stop flag
    (or, for a pipe, until BrokenPipeError); a batch kind sends them in batches of random
    size (1..MAX_BATCH, drawn per call). On the board: F_SEQ is the (first) message being
    sent, F_BATCH how many (batch kinds), F_COUNT the number of messages whose send has
    returned."""
    board = Board(board_path)
    _drop_other_end(kind, obj, other)
    send, limit = sender(kind, obj)
    batches = kind in BATCH_KINDS
    sizes = random.Random(_mix(seed, slot, PRODUCER))
    fd = os.open(log_path(logdir, slot), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    _started(board, slot, PRODUCER)
    seq = 0
    try:
        while not (board.flag(G_STOP_PRODUCERS) or board.get(slot, F_STOP)):
            n = sizes.randint(1, MAX_BATCH) if batches else 1
            msgs = [make_message(seed, slot, seq + k, big) for k in range(n)]
            board.set(slot, F_SEQ, seq)
            if batches:
                board.set(slot, F_BATCH, n)
            _begin(board, slot, limit)
            try:
                outcome, who = send(msgs if batches else msgs[0])
            except queue.Full:             # nothing was sent: the same message(s) again
                _end(board, slot)
                continue
            if outcome != SENT:
                os.write(fd, REC.pack(seq, outcome, 0, 0, who, 0, 0))
            seq += n
            board.set(slot, F_COUNT, seq)
            _end(board, slot)
        _finish(board, slot, END_STOPPED)
    except BrokenPipeError:
        _finish(board, slot, END_BROKEN)
    except BaseException as e:
        _note(logdir, slot, what="exception", role="producer", seq=seq, error=repr(e),
              traceback=traceback.format_exc())
        _finish(board, slot, END_ERROR)
        raise SystemExit(3)
    finally:
        os.close(fd)


def consumer(kind: str, obj, board_path: str, slot: int, logdir: str, seed: int, big: int,
             max_producer: int, other=None) -> None:
    """Receive until the parent raises the consumer stop flag (or, for a pipe, until
    EOFError); log every message with its verdict (a batch kind: batches of up to a random
    1..MAX_BATCH, drawn per call and put in F_BATCH; the batch's records in one write).
    F_COUNT counts messages logged."""
    board = Board(board_path)
    _drop_other_end(kind, obj, other)
    batches = kind in BATCH_KINDS
    if batches:
        take, limit = batch_receiver(kind, obj)
    else:
        recv, limit = receiver(kind, obj)
        take = lambda n: [recv]          # noqa: E731 (recv() raises queue.Empty, EOFError)
    sizes = random.Random(_mix(seed, slot, CONSUMER))
    fd = os.open(log_path(logdir, slot), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    _started(board, slot, CONSUMER)
    me = os.getpid()
    count = 0
    try:
        while not (board.flag(G_STOP_CONSUMERS) or board.get(slot, F_STOP)):
            want = sizes.randint(1, MAX_BATCH) if batches else 1
            if batches:
                board.set(slot, F_BATCH, want)
            _begin(board, slot, limit)
            began = board.get(slot, F_CALL_START)
            records, notes = [], []
            try:
                for get in take(want):
                    try:
                        data, at, pickle_error = get()
                    except _Undecodable as e:
                        records.append(REC.pack(-1, -1, GARBLED, 0, me, began, time.monotonic_ns()))
                        notes.append(dict(verdict=GARBLED, why="undecodable", error=str(e)))
                        continue
                    verdict, p, s, details = _verdict(data, at, pickle_error, seed, big,
                                                      max_producer)
                    records.append(REC.pack(p, s, verdict, len(data), me, began, time.monotonic_ns()))
                    if verdict != OK:
                        notes.append(dict(verdict=verdict, **details))
            except queue.Empty:
                _end(board, slot)
                continue
            if len(records) > want:
                raise AssertionError(f"asked for at most {want} messages, got {len(records)}")
            os.write(fd, b"".join(records))
            for n in notes:
                _note(logdir, slot, what="torn", **n)
            count += len(records)
            board.set(slot, F_COUNT, count)
            _end(board, slot)
        _finish(board, slot, END_STOPPED)
    except EOFError:
        _finish(board, slot, END_EOF)
    except BaseException as e:
        _note(logdir, slot, what="exception", role="consumer", error=repr(e),
              traceback=traceback.format_exc())
        _finish(board, slot, END_ERROR)
        raise SystemExit(3)
    finally:
        os.close(fd)
