"""`ipcfast stat` and `ipcfast ls` report a corrupt segment as such (issue 12): a control
block its kind could never have written, or a header too broken to inspect at all. Never a
traceback or garbage counters, and never a false alarm on a busy, intact segment."""
from __future__ import annotations

import contextlib
import threading

import pytest

import ipcfast
from ipcfast import _segments
from ipcfast._native import ffi, lib
from tests.cli.test_commands import run
from tests.support.shm import new_name, path

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def poked(name, offset, value, size=8):
    """Overwrite *size* bytes of segment *name* at *offset*; put them back afterwards."""
    with open(path(name), "r+b") as f:
        f.seek(offset)
        orig = f.read(size)
        f.seek(offset)
        f.write(value.to_bytes(size, "little"))
        f.flush()
        try:
            yield
        finally:
            f.seek(offset)
            f.write(orig)


def ctl(struct, field):
    return lib.IPCF_CTL_OFFSET + ffi.offsetof(struct, field)


def ls_rows():
    out = run("ls")
    assert out.returncode == 0, out.stderr
    header, *body = out.stdout.splitlines()
    cols = header.split()
    return {line.split()[0]: dict(zip(cols, line.split())) for line in body}


def test_stat_and_ls_report_a_ring_whose_head_is_past_its_tail():
    with ipcfast.Ring(4096, name=new_name("clic")) as r:
        r.send_bytes(b"abc")
        with poked(r.name, ctl("struct ipcf_ring_ctl", "head"), 4096 * 3):
            out = run("stat", r.name)
            assert out.returncode == 2, out
            assert "CORRUPT" in out.stdout and "head is past its tail" in out.stdout, out.stdout
            assert "Traceback" not in out.stderr
            row = ls_rows()[r.name]
            assert row["STATE"] == "corrupt" and row["HELD"] == "?"
        assert run("stat", r.name).returncode == 0          # restored: intact again
        assert ls_rows()[r.name]["STATE"] == "ok"


def test_stat_reports_a_ring_position_off_a_record_boundary():
    with ipcfast.Ring(4096, name=new_name("clic")) as r:
        with poked(r.name, ctl("struct ipcf_ring_ctl", "tail"), 3):
            out = run("stat", r.name)
            assert out.returncode == 2 and "record boundary" in out.stdout, out


def test_stat_and_ls_report_a_queue_reading_a_generation_not_yet_written():
    q = ipcfast.Queue(name=new_name("clic"))
    try:
        q.put(1)
        name = q.name
        with poked(name, ctl("struct ipcf_queue_ctl", "read_gen"), 7):
            out = run("stat", name)
            assert out.returncode == 2 and "generation" in out.stdout, out
            assert ls_rows()[name]["STATE"] == "corrupt"
    finally:
        q.close()


@pytest.mark.parametrize("field, value, size, why", [
    ("ready_head", 1000, 4, "list head past its slots"),
    ("max_message", 3, 4, "parameters disagree"),
    ("count", 1 << 20, 4, "more messages than slots"),
])
def test_stat_and_ls_report_a_mailbox_whose_control_block_is_impossible(field, value, size, why):
    with ipcfast.Mailbox(new_name("clic"), capacity=1 << 16, max_message=4096,
                         max_messages=8) as mb:
        mb.send_bytes(b"x")
        with poked(mb.name, ctl("struct ipcf_mbox_ctl", field), value, size):
            out = run("stat", mb.name)
            assert out.returncode == 2 and why in out.stdout, out
            assert ls_rows()[mb.name]["STATE"] == "corrupt"


def test_a_header_too_broken_to_inspect_is_listed_and_stat_says_why():
    with ipcfast.Ring(4096, name=new_name("clic")) as r:
        with poked(r.name, ffi.offsetof("struct ipcf_seg_hdr", "total_size"), 12345):
            out = run("stat", r.name)
            assert out.returncode == 2, out
            assert f"{r.name} (corrupt): is truncated or its header is inconsistent" in out.stdout
            row = ls_rows()[r.name]
            assert row["STATE"] == "corrupt" and row["KIND"] == "?"
        with poked(r.name, ffi.offsetof("struct ipcf_seg_hdr", "version"), 999, 4):
            assert ls_rows()[r.name]["STATE"] == "other-layout"


def test_a_busy_intact_ring_is_never_reported_corrupt():
    """Head and tail move while inspection reads them: no false alarm."""
    with ipcfast.Ring(4096, name=new_name("clic")) as r:
        stop = threading.Event()

        def pump():
            while not stop.is_set():
                r.send_bytes(b"m" * 200, timeout=5)
                r.recv_bytes(timeout=5)
        t = threading.Thread(target=pump)
        t.start()
        try:
            for _ in range(2000):
                assert _segments.inspect(r.name).corrupt == ""
        finally:
            stop.set()
            t.join(10)
