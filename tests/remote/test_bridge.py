"""The bridge (``ipcfast bridge``): local queue -> stream and stream -> local queue, every
item once and in order; a bridge SIGKILLed with a batch unacknowledged has it redelivered;
SIGTERM never cuts a batch; bad invocations exit with a message."""
from __future__ import annotations

import collections

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import ipcfast
from tests.support.procs import REPO_ROOT, wait_until
from tests.support.redis_server import unique

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def R(server):
    import ipcfast.remote as R
    return R


@pytest.fixture
def local():
    """local(maxsize=0) -> a new named local ipcfast.Queue, closed after the test."""
    made = []

    def make(maxsize: int = 0) -> ipcfast.Queue:
        q = ipcfast.Queue(maxsize, name=f"ipcf-br-{uuid.uuid4().hex[:10]}")
        made.append(q)
        return q
    yield make
    for q in made:
        q.close()


def start_bridge(*args: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "ipcfast", "bridge", *args],
                         stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    line = p.stderr.readline()              # the start line: both ends are open
    assert "ipcfast bridge:" in line and p.poll() is None, line + p.stderr.read()
    return p


def stop(p: subprocess.Popen, sig=signal.SIGTERM) -> str:
    """Send *sig* (unless None), return the bridge's stderr once it exited."""
    if sig is not None:
        p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=20)
    finally:
        p.kill()
    return err


def test_local_to_remote_moves_every_item_in_order(R, url, local):
    lq = local()
    rname = unique()
    rq = R.Queue(url, rname)
    br = start_bridge("--from-local", lq.name, "--to", url, rname, "--batch", "64")
    try:
        for i in range(0, 2000, 100):
            lq.put_many([("x", k) for k in range(i, i + 100)])
        got = []
        while len(got) < 2000:
            got += rq.get_many(timeout=20)
        assert got == [("x", k) for k in range(2000)]
    finally:
        err = stop(br)
    assert br.returncode == 0 and "2000 items moved" in err, err
    rq.close()


def test_remote_to_local_moves_every_item_and_acknowledges_it(R, url, local):
    lq = local()
    rname = unique()
    rq = R.JoinableQueue(url, rname)
    br = start_bridge("--from", url, rname, "--to-local", lq.name)
    try:
        rq.put_many(range(3000))
        got = []
        while len(got) < 3000:
            got += lq.get_many(timeout=20)
        assert got == list(range(3000))
        rq.join(timeout=20)                # the bridge acknowledged every one
    finally:
        err = stop(br)
    assert br.returncode == 0, err
    rq.close()


def test_a_bridge_killed_holding_an_unacknowledged_batch_loses_nothing(R, url, local):
    lq = local(10)      # small: the bridge blocks with a batch taken
    rname = unique()
    rq = R.JoinableQueue(url, rname)
    rq.put_many(range(100))
    br = start_bridge("--from", url, rname, "--to-local", lq.name, "--batch", "10",
                      "--visibility-timeout", "0.5")
    try:
        # the first batch fills the local queue; the second is taken, pending, and cannot be put
        wait_until(lambda: lq.full() and rq.qsize() == 80, what="bridge blocked mid-batch")
        assert rq.unfinished() == 90               # only the batch put locally is acknowledged
    finally:
        br.kill()
        br.wait(10)
    got = lq.get_many()                             # the first batch, put locally before the kill
    assert got == list(range(10))
    br = start_bridge("--from", url, rname, "--to-local", lq.name, "--batch", "10",
                      "--visibility-timeout", "0.5")
    try:
        while len(got) < 100:
            got += lq.get_many(timeout=20)
        rq.join(timeout=20)
    finally:
        stop(br)
    assert sorted(set(got)) == list(range(100))      # nothing lost
    assert sorted(got)[:10] == list(range(10))       # at most the killed batch twice
    rq.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_local_to_remote_bridge_finishes_its_batch(R, url, local, sig):
    lq = local()
    rname = unique()
    rq = R.Queue(url, rname)
    br = start_bridge("--from-local", lq.name, "--to", url, rname, "--batch", "50")
    n = 0
    try:
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:             # items keep coming while it is stopped
            lq.put_many(range(n, n + 50))
            n += 50
        br.send_signal(sig)
        for _ in range(20):
            lq.put_many(range(n, n + 50))
            n += 50
    finally:
        err = stop(br, None)
    assert br.returncode == 0, err
    moved = int(err.split("stopped, ")[1].split()[0])
    remote_items = []
    while True:
        try:
            remote_items += rq.get_many(timeout=0.5)
        except R.Empty:
            break
    local_items = []
    while not lq.empty():
        local_items += lq.get_many()
    assert len(remote_items) == moved
    assert remote_items + local_items == list(range(n))    # nothing lost, nothing twice
    rq.close()


def test_a_sigkilled_local_to_remote_bridge_loses_nothing_and_repeats_at_most_its_batch(R, url, local):
    lq = local()
    rname = unique()
    rq = R.Queue(url, rname)
    br = start_bridge("--from-local", lq.name, "--to", url, rname, "--batch", "50")
    n = 0
    try:
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            lq.put_many(range(n, n + 50))
            n += 50
    finally:
        br.kill()
        br.wait(10)
    remote_items = []
    while True:
        try:
            remote_items += rq.get_many(timeout=0.5)
        except R.Empty:
            break
    local_items = []
    while not lq.empty():
        local_items += lq.get_many()
    everything = remote_items + local_items
    assert sorted(set(everything)) == list(range(n))  # nothing lost: a batch leaves the local
    twice = sorted(x for x, k in collections.Counter(everything).items() if k > 1)  # queue only
    assert len(twice) <= 50, twice                    # once it is in the stream; the one in
    assert not twice or twice == list(range(twice[0], twice[0] + len(twice))), twice  # flight
    rq.close()                                        # may be there and still local


def test_bad_invocations_exit_with_a_message(url, local):
    run = lambda *a: subprocess.run([sys.executable, "-m", "ipcfast", "bridge", *a],   # noqa: E731
                                    capture_output=True, text=True, timeout=30, cwd=REPO_ROOT)
    r = run("--from-local", "a", "--to-local", "b")
    assert r.returncode == 2 and "one end must be local" in r.stderr
    r = run("--to-local", "a")
    assert r.returncode == 2 and "required" in r.stderr
    r = run("--from-local", "ipcf-no-such-queue-xyz", "--to", url, "s")
    assert r.returncode == 1 and "no local queue named" in r.stderr
    lq = local()
    r = run("--from-local", lq.name, "--to", "redis://127.0.0.1:1/0", "s",
            "--connect-timeout", "0.3")
    assert r.returncode == 1 and "redis://127.0.0.1:1/0" in r.stderr
    

def test_a_bridge_outlives_a_server_outage_longer_than_its_reconnect_timeout(R, local, server_factory):
    s = server_factory(persist=True)
    lq = local()
    rname = unique()
    rq = R.Queue(s.url, rname)
    br = start_bridge("--from-local", lq.name, "--to", s.url, rname, "--batch", "50",
                      "--reconnect-timeout", "0.3")
    try:
        lq.put_many(range(0, 500))
        wait_until(lambda: rq.qsize() == 500, what="first items across")
        s.stop()
        lq.put_many(range(500, 1000))          # taken by the bridge while the server is down
        time.sleep(1.5)                        # several of the bridge's reconnect timeouts
        s.start()
        got = []
        while len(got) < 1000:
            got += rq.get_many(timeout=20)
    finally:
        err = stop(br)
    assert got == list(range(1000)), got[:20]
    assert "retrying" in err and br.returncode == 0, err
    rq.close()
