"""The consumer loops of the byte and array workloads catch a wrong length, a wrong order
and altered content (in process: the loops take plain callables)."""
from __future__ import annotations

import pytest

from ipcfast import Ring
from ipcfast._units import KiB, MiB
from ipcfast.bench import byteloops as B
from ipcfast.bench import messages as M
from ipcfast.bench.channels import ring_capacity

pytestmark = pytest.mark.timeout(60)


def sent_bytes(size: int, n: int, start: int = 0) -> list:
    out: list = []
    B.produce_bytes(lambda b: out.append(bytes(b)), start, n, size)
    return out


def flip(m: bytes, at: int) -> bytes:
    b = bytearray(m)
    b[at] ^= 0x01
    return bytes(b)


def consume(msgs: list, size: int, start: int = 0):
    return B.consume_bytes(iter(msgs).__next__, start, len(msgs), size)


@pytest.mark.parametrize("size", [64, 4 * KiB, 64 * KiB, 1 * MiB])
def test_what_produce_bytes_sent_passes_every_check(size):
    got = consume(sent_bytes(size, 10, start=7), size, start=7)
    assert (got.count, got.seq_sum, got.nbytes) == (10, sum(range(7, 17)), 10 * size)


@pytest.mark.parametrize("size", [64, 64 * KiB])
def test_a_short_or_long_message_is_a_wrong_length(size):
    for bad in (lambda m: m[:-1], lambda m: m + b"x"):
        msgs = sent_bytes(size, 6)
        msgs[3] = bad(msgs[3])
        with pytest.raises(M.CheckError, match=rf"^message 3: {len(msgs[3])} bytes, expected {size}$"):
            consume(msgs, size)


@pytest.mark.parametrize("size", [64, 1 * MiB])
def test_swapped_missing_and_duplicated_messages_are_a_wrong_order(size):
    msgs = sent_bytes(size, 8)
    msgs[4], msgs[5] = msgs[5], msgs[4]
    with pytest.raises(M.CheckError, match=r"^message 4: carries sequence numbers 5 / 5$"):
        consume(msgs, size)
    msgs = sent_bytes(size, 8)
    del msgs[2]
    msgs.append(msgs[-1])
    with pytest.raises(M.CheckError, match=r"^message 2: carries sequence numbers 3 / 3$"):
        consume(msgs, size)
    msgs = sent_bytes(size, 8)
    msgs[6] = msgs[5]
    with pytest.raises(M.CheckError, match=r"^message 6: carries sequence numbers 5 / 5$"):
        consume(msgs, size)


def test_a_torn_message_shows_two_sequence_numbers():
    size = 64 * KiB
    msgs = sent_bytes(size, 8)
    msgs[5] = msgs[5][:size // 2] + msgs[6][size // 2:]     # head of 5, tail of 6
    with pytest.raises(M.CheckError, match=r"^message 5: carries sequence numbers 5 / 6$"):
        consume(msgs, size)


def test_small_messages_are_compared_whole_every_time():
    msgs = sent_bytes(64, 8)
    msgs[5] = flip(msgs[5], 30)
    with pytest.raises(M.CheckError, match=r"^message 5: content differs from what was sent$"):
        consume(msgs, 64)


@pytest.mark.parametrize("which", [0, 8, 16, 19])          # sampled: every 8th and the last
def test_large_messages_are_compared_whole_when_sampled(which):
    size = 64 * KiB
    msgs = sent_bytes(size, 20)
    msgs[which] = flip(msgs[which], size // 2)
    with pytest.raises(M.CheckError, match=rf"^message {which}: content differs"):
        consume(msgs, size)


def test_the_batched_loop_checks_the_same():
    size = 4 * KiB
    msgs = sent_bytes(size, 12)
    batches = [msgs[:5], msgs[5:12]]
    got = B.consume_bytes_many(iter(batches).__next__, 0, 12, size)
    assert (got.count, got.nbytes) == (12, 12 * size)
    msgs[7] = flip(msgs[7], 100)
    batches = [msgs[:5], msgs[5:12]]
    with pytest.raises(M.CheckError, match=r"^message 7: content differs"):
        B.consume_bytes_many(iter(batches).__next__, 0, 12, size)
    with pytest.raises(M.CheckError, match=r"^message 5: \d+ bytes, expected 4096$"):
        B.consume_bytes_many(iter([msgs[:5], [b"short"]]).__next__, 0, 12, size)


@pytest.mark.parametrize("size", [64, 64 * KiB])
def test_the_zero_copy_loop_checks_messages_in_the_ring(size):
    msgs = sent_bytes(size, 9)
    with Ring(ring_capacity(size) * 4) as ring:
        for m in msgs:
            ring.send_bytes(m)
        got = B.consume_bytes_view(ring.view, 0, 9, size)
        assert (got.count, got.nbytes) == (9, 9 * size)
        msgs[8] = flip(msgs[8], size // 2)           # sampled: message 8 is the last
        msgs[1], msgs[2] = msgs[2], msgs[1]
        for m in msgs:
            ring.send_bytes(m)
        with pytest.raises(M.CheckError, match=r"^message 1: carries sequence numbers 2 / 2$"):
            B.consume_bytes_view(ring.view, 0, 9, size)


@pytest.mark.parametrize("size", [64, 4 * KiB])
def test_the_batched_zero_copy_loops_write_and_check_messages_in_the_ring(size):
    with Ring(1 << 20) as ring:
        B.produce_bytes_claim_many(ring.claim_many, 0, 40, size, 16)
        got = B.consume_bytes_view_many(ring.view_many, 0, 40, size)
        assert (got.count, got.nbytes) == (40, 40 * size)
        msgs = sent_bytes(size, 9)
        msgs[3], msgs[4] = msgs[4], msgs[3]
        ring.send_many(msgs)
        with pytest.raises(M.CheckError, match=r"^message 3: carries sequence numbers 4 / 4$"):
            B.consume_bytes_view_many(ring.view_many, 0, 9, size)


# --------------------------------------------------------------------------------------------
# numpy arrays


@pytest.fixture
def arrays():
    pytest.importorskip("numpy")
    from ipcfast.bench import arrays
    return arrays


def sent_arrays(arrays, size: int, n: int, start: int = 0) -> list:
    out: list = []
    arrays.produce_arrays(lambda a: out.append(a.copy()), start, n, size)   # it reuses a
    return out


def consume_arrays(arrays, msgs, size, start=0):
    return arrays.consume_arrays(iter(msgs).__next__, start, len(msgs), size)


def test_what_produce_arrays_sent_passes_every_check(arrays):
    import numpy as np
    msgs = sent_arrays(arrays, 64 * KiB, 10)
    assert all(a.dtype == np.float32 and a.shape == (16 * KiB,) for a in msgs)
    assert [int(a[0]) for a in msgs] == list(range(10)) == [int(a[-1]) for a in msgs]
    got = consume_arrays(arrays, msgs, 64 * KiB)
    assert (got.count, got.seq_sum, got.nbytes) == (10, 45, 10 * 64 * KiB)


def test_array_stamps_wrap_at_float32s_exact_integers(arrays):
    start = arrays.STAMP_MOD - 2
    msgs = sent_arrays(arrays, 4 * KiB, 4, start)
    assert [int(a[0]) for a in msgs] == [start, start + 1, 0, 1]
    assert consume_arrays(arrays, msgs, 4 * KiB, start).count == 4


def test_a_wrong_dtype_shape_or_type_is_caught(arrays):
    import numpy as np
    size = 64 * KiB
    cases = [(lambda a: np.zeros(a.shape, np.float64), r"^array 2: dtype float64, expected float32$"),
             (lambda a: a.view(np.int32), r"^array 2: dtype int32, expected float32$"),
             (lambda a: a[:-1], r"^array 2: shape \(16383,\), expected \(16384,\)$"),
             (lambda a: a.reshape(128, 128), r"^array 2: shape \(128, 128\), expected"),
             (lambda a: a.tobytes(), r"^array 2: got a bytes, expected a numpy.ndarray$")]
    for bad, message in cases:
        msgs = sent_arrays(arrays, size, 5)
        msgs[2] = bad(msgs[2])
        with pytest.raises(M.CheckError, match=message):
            consume_arrays(arrays, msgs, size)


def test_an_array_out_of_order_is_caught(arrays):
    msgs = sent_arrays(arrays, 64 * KiB, 6)
    msgs[3], msgs[4] = msgs[4], msgs[3]
    with pytest.raises(M.CheckError, match=r"^array 3: carries sequence numbers 4\.0 / 4\.0, expected 3$"):
        consume_arrays(arrays, msgs, 64 * KiB)


@pytest.mark.parametrize("which", [0, 8, 11])                # sampled: every 8th and the last
def test_altered_array_content_is_caught_when_sampled(arrays, which):
    msgs = sent_arrays(arrays, 64 * KiB, 12)
    msgs[which].view("u1")[1000] ^= 1
    with pytest.raises(M.CheckError, match=rf"^array {which}: content differs"):
        consume_arrays(arrays, msgs, 64 * KiB)


def test_a_non_contiguous_array_is_caught(arrays):
    import numpy as np
    msgs = sent_arrays(arrays, 4 * KiB, 3)
    a = np.empty(2 * msgs[0].shape[0], np.float32)[::2]
    a[:] = msgs[0]
    msgs[0] = a
    with pytest.raises(M.CheckError, match=r"^array 0: not C-contiguous$"):
        consume_arrays(arrays, msgs, 4 * KiB)
