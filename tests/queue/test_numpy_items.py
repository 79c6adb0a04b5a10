"""numpy arrays through ipcfast.Queue arrive intact: dtype, shape, strides, memory order,
writability, object arrays (plain pickle), views of larger arrays. numpy is optional for
ipcfast: these tests are skipped without it."""
from __future__ import annotations

import multiprocessing as mp
import pickle

import pytest

import ipcfast

np = pytest.importorskip("numpy")


@pytest.fixture
def q():
    q = ipcfast.Queue(capacity=1 << 16)
    yield q
    q.close()


def same(a, b) -> bool:
    return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
            and a.flags.c_contiguous == b.flags.c_contiguous
            and a.flags.f_contiguous == b.flags.f_contiguous
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


ARRAYS = {
    "float32 8 MiB": lambda: np.arange(2 << 20, dtype=np.float32),
    "float64 2-d": lambda: np.random.default_rng(1).random((300, 500)),
    "int16 3-d": lambda: np.arange(60_000, dtype=np.int16).reshape(30, 40, 50),
    "fortran order": lambda: np.asfortranarray(np.arange(200_000, dtype=np.int64).reshape(400, 500)),
    "strided view": lambda: np.arange(400_000, dtype=np.float64)[::3],
    "transposed": lambda: np.arange(120_000, dtype=np.uint8).reshape(300, 400).T,
    "complex with nan": lambda: np.array([1 + 2j, np.nan, 3j] * 50_000, dtype=np.complex128),
    "structured": lambda: np.zeros(50_000, dtype=[("a", "<i4"), ("b", "<f8"), ("c", "S5")]),
    "0-d": lambda: np.array(3.5),
    "empty": lambda: np.zeros((0, 7), dtype=np.float32),
    "bool": lambda: np.arange(300_000) % 3 == 0,
    "datetime64": lambda: np.arange(100_000).astype("datetime64[s]"),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_array_arrives_as_a_pickle_round_trip_gives_it(q, name):
    # dtype, shape, content and memory order as sent; a non-contiguous view arrives as a
    # contiguous copy, exactly as through pickle (and multiprocessing.Queue)
    a = ARRAYS[name]()
    q.put(a)
    b = q.get(timeout=10)
    expected = pickle.loads(pickle.dumps(a, protocol=5))
    assert same(expected, b), name
    assert b.strides == expected.strides
    assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def test_object_arrays_travel_by_plain_pickle(q):
    a = np.array([{"k": 1}, [1, 2], "s", None] * 1000, dtype=object)
    q.put(a)
    b = q.get(timeout=10)
    assert b.dtype == object and b.tolist() == a.tolist()


def test_a_received_array_is_writable_and_owns_memory_apart_from_the_queue(q):
    a = np.arange(1 << 18, dtype=np.float32)
    q.put(a)
    b = q.get(timeout=10)
    b[:] = -1                        # its memory is its own, not the ring's ...
    q.put(np.zeros(1 << 18, dtype=np.float32))
    assert q.get(timeout=10).sum() == 0
    assert (b == -1).all()           # ... so the next item does not overwrite it
    assert b.flags.writeable


def test_an_array_changed_right_after_put_arrives_as_it_was_put(q):
    a = np.ones(1 << 20, dtype=np.float32)
    q.put(a)
    a[:] = 7
    assert (q.get(timeout=10) == 1).all()


def _send_arrays(name: str) -> None:
    out = ipcfast.Queue.attach(name)
    for i in range(5):
        a = np.full((512, 1024), i, dtype=np.float32)
        out.put((i, a))
    out.close()


@pytest.mark.timeout(60)
def test_arrays_from_another_process_arrive_in_order(q):
    p = mp.get_context("spawn").Process(target=_send_arrays, args=(q.name,))
    p.start()
    try:
        for i in range(5):
            j, a = q.get(timeout=30)
            assert j == i and a.shape == (512, 1024) and a.dtype == np.float32
            assert (a == i).all()
    finally:
        p.join(30)
    assert p.exitcode == 0
