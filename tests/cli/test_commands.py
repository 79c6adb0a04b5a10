"""The operator commands: ipcfast ls / stat / rm / gc, and their exit codes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import ipcfast
from ipcfast import cli
from tests.support.shm import path, segments


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ipcfast", *args], capture_output=True,
                          text=True, timeout=60)


def test_ls_lists_rings_queues_and_mailboxes_with_their_kind():
    with ipcfast.Ring(name="ipcf-cli-ring") as r, ipcfast.Mailbox("ipcf-cli-mb") as mb:
        q = ipcfast.Queue(name="ipcf-cli-q")
        try:
            r.send_bytes(b"abc")
            q.put(1)
            mb.send_bytes(b"defg")
            out = run("ls")
            assert out.returncode == 0, out.stderr
            header, *body = out.stdout.splitlines()
            cols = header.split()
            assert cols == ["NAME", "KIND", "CAPACITY", "HELD", "BYTES", "ALIVE", "DEAD",
                            "OWNER", "AGE", "STATE"]
            rows = {line.split()[0]: dict(zip(cols, line.split())) for line in body}
            assert all(len(line.split()) == len(cols) for line in body), out.stdout
            # aligned: cells are padded to their column's width, so every line is as wide as
            # the header (the last column is right-aligned)
            assert {len(line) for line in body} == {len(header)}, out.stdout
            assert rows["ipcf-cli-ring"]["KIND"] == "ring" and rows["ipcf-cli-ring"]["HELD"] == "1"
            assert rows["ipcf-cli-ring"]["BYTES"] == "3"
            assert rows["ipcf-cli-q"]["KIND"] == "queue" and rows["ipcf-cli-q"]["HELD"] == "1"
            assert rows["ipcf-cli-q.0"]["KIND"] == "queue-ring"
            assert rows["ipcf-cli-mb"]["KIND"] == "mailbox" and rows["ipcf-cli-mb"]["HELD"] == "1"
            assert rows["ipcf-cli-mb"]["BYTES"] == "4"
            assert rows["ipcf-cli-ring"]["ALIVE"] == "1" and rows["ipcf-cli-ring"]["DEAD"] == "0"
            assert {rows[n]["STATE"] for n in ("ipcf-cli-ring", "ipcf-cli-q", "ipcf-cli-mb")} == {"ok"}
        finally:
            q.close()


def test_ls_skips_files_that_are_not_ipcfast_segments(tmp_path):
    garbage = path(f"ipcf-cli-garbage-{os.getpid()}")
    with open(garbage, "wb") as f:
        f.write(os.urandom(8192))
    try:
        out = run("ls")
        assert out.returncode == 0
        assert os.path.basename(garbage) not in out.stdout
    finally:
        os.unlink(garbage)


def test_stat_shows_counters_of_a_queue():
    q = ipcfast.Queue(name="ipcf-cli-stat", maxsize=5)
    try:
        for i in range(3):
            q.put(i)
        q.get()
        out = run("stat", "ipcf-cli-stat")
        assert out.returncode == 0, out.stderr
        assert "items put          3" in out.stdout
        assert "items got          1" in out.stdout
        assert "maxsize            5" in out.stdout
    finally:
        q.close()


def test_stat_of_a_missing_name_exits_1_with_a_message():
    out = run("stat", "ipcf-cli-no-such-segment")
    assert out.returncode == 1
    assert "no segment named" in out.stderr


def test_rm_refuses_a_file_that_is_not_an_ipcfast_segment():
    foreign = path(f"ipcf-cli-notours-{os.getpid()}")
    with open(foreign, "wb") as f:
        f.write(b"x" * 5000)
    try:
        out = run("rm", os.path.basename(foreign))
        assert out.returncode == 1
        assert "not an ipcfast segment" in out.stderr
        assert os.path.exists(foreign)
    finally:
        os.unlink(foreign)


def test_rm_removes_a_queue_with_its_rings():
    q = ipcfast.Queue(name="ipcf-cli-rmq", capacity=4096)
    try:
        for i in range(200):              # several chained rings
            q.put(b"x" * 100)
        parts = segments("ipcf-cli-rmq.")
        assert len(parts) > 1
        assert run("rm", "--dry-run", "ipcf-cli-rmq").returncode == 0
        assert os.path.exists(path("ipcf-cli-rmq"))
        out = run("rm", "ipcf-cli-rmq")
        assert out.returncode == 0, out.stderr
        assert not segments("ipcf-cli-rmq")
        q.put(b"y")                       # the ring this process has mapped still works
    finally:
        q.close()


ORPHAN = textwrap.dedent("""
    import os, signal, sys, ipcfast
    r = ipcfast.Ring(name=sys.argv[1])
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.timeout(60)
def test_gc_removes_segments_whose_processes_all_died_and_keeps_live_ones():
    subprocess.run([sys.executable, "-c", ORPHAN, "ipcf-cli-orphan"], capture_output=True, timeout=30)
    assert os.path.exists(path("ipcf-cli-orphan"))
    with ipcfast.Ring(name="ipcf-cli-alive"):
        dry = run("gc", "--dry-run")
        assert "would remove ipcf-cli-orphan" in dry.stdout
        assert os.path.exists(path("ipcf-cli-orphan"))
        out = run("gc")
        assert out.returncode == 0, out.stderr
        assert "removed ipcf-cli-orphan" in out.stdout
        assert not os.path.exists(path("ipcf-cli-orphan"))
        assert os.path.exists(path("ipcf-cli-alive"))


def test_unknown_command_is_a_usage_error():
    out = run("frobnicate")
    assert out.returncode == 2


def test_inspect_reports_live_peers_without_joining():
    with ipcfast.Ring(name="ipcf-cli-peek") as r:
        seg = cli.inspect(r.name)
        assert seg.kind == "ring" and seg.live == 1 and seg.capacity == r.capacity
        assert cli.inspect(r.name).live == 1       # inspecting did not register us
