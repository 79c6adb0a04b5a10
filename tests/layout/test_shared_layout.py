"""The shared-memory layout seen through cffi must match the C layout.

These mirror the _Static_asserts in csrc/layout.h: if the cdef that Python sees (built from
csrc/layout.h for these tests) ever drifts from what the C compiler lays out, or somebody
edits a struct without updating the asserts, a process built from one and a process built
from the other would silently disagree about where `head`, `tail` and the locks live.
"""
from __future__ import annotations

import pathlib
import re

import pytest

from ipcfast._native import ffi, lib

CSRC = pathlib.Path(__file__).resolve().parents[2] / "csrc"


def test_segment_header_is_1024_bytes():
    """magic .. param (128 bytes), the 64-entry peer table, then the 48-word transit table."""
    assert ffi.sizeof("struct ipcf_seg_hdr") == 1024


def test_ring_control_block_is_768_bytes():
    """tail/head lines, the two events and the two side locks: 6 lines of 128 bytes, and
    nothing else (the pipe-end tables live in the pipe block, only in pipe rings)."""
    assert ffi.offsetof("struct ipcf_ring_ctl", "clock") + 128 == 768
    assert ffi.sizeof("struct ipcf_ring_ctl") == 768
    assert ffi.sizeof("struct ipcf_ring_ctl") % lib.IPCF_CACHELINE == 0


def test_the_pipe_block_follows_the_ring_control_block_in_the_header_page():
    assert lib.IPCF_PIPE_OFFSET == lib.IPCF_CTL_OFFSET + ffi.sizeof("struct ipcf_ring_ctl") == 1792
    assert lib.IPCF_PIPE_OFFSET % lib.IPCF_CACHELINE == 0
    assert lib.IPCF_PIPE_OFFSET + ffi.sizeof("struct ipcf_pipe_ctl") <= lib.IPCF_HDR_SIZE


@pytest.mark.parametrize("field, offset", [
    ("writers", 0),           # processes holding the sending end
    ("readers", 128),         # ... the receiving end
    ("pend_writers", 256),    # ends in transit: (sender word, expiry) pairs
    ("pend_readers", 384),
])
def test_pipe_block_tables(field, offset):
    assert ffi.offsetof("struct ipcf_pipe_ctl", field) == offset
    assert ffi.sizeof("struct ipcf_pipe_ctl") >= offset + lib.IPCF_PIPE_ENDS * 8
    assert ffi.sizeof("struct ipcf_pipe_ctl") == 1600


def test_pipe_block_reader_locks_and_their_alive_times_follow_the_tables():
    """One robust mutex per reader-end slot (a sender reads its owner-died bit), then one
    32-bit time per slot."""
    assert ffi.offsetof("struct ipcf_pipe_ctl", "rlock") == 512
    assert lib.IPCF_PIPE_LOCK == 64
    assert ffi.offsetof("struct ipcf_pipe_ctl", "rseen_ms") == 512 + lib.IPCF_PIPE_ENDS * 64
    assert ffi.sizeof("struct ipcf_pipe_ctl") == 1536 + lib.IPCF_PIPE_ENDS * 4


_ASSERT = re.compile(
    r"_Static_assert\(\s*(?:sizeof\(struct (\w+)\)|(?:__builtin_)?offsetof\(struct (\w+),\s*(\w+)\))"
    r"\s*==\s*(\d+)")


def _static_asserts():
    found = []
    for path in sorted(CSRC.glob("*.[ch]")) if CSRC.is_dir() else []:
        for m in _ASSERT.finditer(path.read_text()):
            struct = m.group(1) or m.group(2)
            found.append((path.name, struct, m.group(3), int(m.group(4))))
    return found


@pytest.mark.skipif(not CSRC.is_dir(), reason="needs the source tree")
def test_every_static_assert_in_the_c_sources_holds_for_the_cffi_view():
    """The cdef Python sees and the struct the C compiler laid out must agree on every size
    and offset csrc/ pins down with == in a _Static_assert."""
    checked = 0
    for fname, struct, field, value in _static_asserts():
        try:
            got = (ffi.offsetof(f"struct {struct}", field) if field
                   else ffi.sizeof(f"struct {struct}"))
        except ffi.error:
            continue            # a struct private to the C side: nothing for Python to see
        what = f"offsetof({struct}, {field})" if field else f"sizeof({struct})"
        assert got == value, f"{fname}: {what} is {got} in cffi, {value} in C"
        checked += 1
    assert checked >= 22      # every == assert in layout.h today


def test_queue_control_block_is_896_bytes():
    assert ffi.sizeof("struct ipcf_queue_ctl") == 896


def test_mailbox_control_block_is_888_bytes_and_slot_header_128():
    assert ffi.sizeof("struct ipcf_mbox_ctl") == 888
    assert ffi.sizeof("struct ipcf_mbox_slot") == 128


@pytest.mark.parametrize("field, offset", [
    ("lock", 0),           # the mailbox mutex
    ("data", 128),         # receivers' event, its own line
    ("space", 256),        # senders' event
    ("receipt", 384),      # receipt waiters' event
    ("capacity", 512),     # state under the lock starts here
])
def test_mailbox_control_field_offsets(field, offset):
    assert ffi.offsetof("struct ipcf_mbox_ctl", field) == offset


def test_event_is_a_futex_word_counts_and_named_sleeper_slots():
    assert ffi.sizeof("struct ipcf_event") == lib.IPCF_EVENT_SIZE == 112
    assert ffi.offsetof("struct ipcf_event", "seq") == 0
    assert ffi.offsetof("struct ipcf_event", "waiters") == 4
    assert ffi.offsetof("struct ipcf_event", "sleeping") == 8
    assert ffi.offsetof("struct ipcf_event", "owner") == 16
    assert lib.IPCF_EVENT_SLOTS == 8
    assert ffi.offsetof("struct ipcf_event", "poller") == 80     # poll.c's 8 poller slots
    assert lib.IPCF_EVENT_POLLERS == 8


@pytest.mark.parametrize("field, offset", [
    ("tail", 0),          # producer line
    ("head", 128),        # consumer line, its own 128-byte line
    ("data", 256),        # consumers' event
    ("space", 384),       # producers' event
    ("plock", 512),       # producer mutex
    ("clock", 640),       # consumer mutex
])
def test_ring_control_field_offsets(field, offset):
    assert ffi.offsetof("struct ipcf_ring_ctl", field) == offset


@pytest.mark.parametrize("field, offset", [
    ("write_gen", 0),
    ("put_j", 32),
    ("read_gen", 128),
    ("get_j", 160),
    ("join", 512),
    ("plock", 640),
    ("clock", 768),
])
def test_queue_control_field_offsets(field, offset):
    assert ffi.offsetof("struct ipcf_queue_ctl", field) == offset


def test_hot_fields_of_each_side_sit_on_different_128_byte_lines():
    lines = {f: ffi.offsetof("struct ipcf_ring_ctl", f) // 128
             for f in ("tail", "head", "data", "space", "plock", "clock")}
    assert len(set(lines.values())) == len(lines), lines


def test_segment_header_fields_used_by_attach_validation():
    off = lambda f: ffi.offsetof("struct ipcf_seg_hdr", f)  # noqa: E731
    assert off("magic") == 0
    assert off("version") == 8
    assert off("kind") == 12
    assert off("total_size") == 16
    assert off("data_offset") == 24
    assert off("capacity") == 32
    assert off("creator_pid") == 48       # with creator_start: who made it (ls, gc, tests)
    assert off("flags") == 52
    assert off("creator_start") == 56
    assert off("param") == 72
    assert off("peers") == 128
    assert off("transit") == off("peers") + 8 * lib.IPCF_MAX_PEERS == 640
    assert off("transit") + 8 * lib.IPCF_TRANSIT_WORDS == ffi.sizeof("struct ipcf_seg_hdr")


def test_header_does_not_overlap_the_control_block():
    assert ffi.sizeof("struct ipcf_seg_hdr") <= lib.IPCF_CTL_OFFSET


@pytest.mark.parametrize("ctl", ["struct ipcf_ring_ctl", "struct ipcf_queue_ctl",
                                 "struct ipcf_mbox_ctl"])
def test_control_block_fits_in_the_header_page(ctl):
    assert lib.IPCF_CTL_OFFSET + ffi.sizeof(ctl) <= lib.IPCF_HDR_SIZE


def test_header_page_is_page_aligned_for_the_double_mapping():
    # the data area is mmapped (twice) at file offset IPCF_HDR_SIZE: it must be page aligned
    import mmap
    assert lib.IPCF_HDR_SIZE % mmap.PAGESIZE == 0
    assert lib.IPCF_MIN_CAPACITY % mmap.PAGESIZE == 0


def test_layout_version_of_the_library_matches_the_header_constant():
    assert lib.ipcf_layout_version() == lib.IPCF_LAYOUT_VERSION == 4


def test_the_api_header_holds_no_shared_memory_layout():
    """ipcfast.h is the public API (what Python modules use); every shared struct, its
    constants and its asserts are in layout.h."""
    api = (CSRC / "ipcfast.h").read_text() if CSRC.is_dir() else ""
    for name in ("ipcf_seg_hdr", "ipcf_ring_ctl", "ipcf_pipe_ctl", "ipcf_queue_ctl",
                 "ipcf_mbox_ctl", "ipcf_mbox_slot", "ipcf_event", "_Static_assert"):
        assert name not in api, name


def test_transit_time_is_exported_as_an_integer():
    assert lib.IPCF_TRANSIT_NS == 60_000_000_000


def test_magic_spells_ipcfast():
    assert lib.IPCF_MAGIC.to_bytes(8, "little") == b"IPCFAST\0"
