"""The segments the corruption fuzz corrupts: one template per kind, made by ipcfast itself.

A template is made once (in the test process, or in a reproducer): an object of the kind is
created, given messages (after enough traffic that the ring positions wrap), and its files
are copied out byte for byte; then it is closed, which removes them. The process tables in
the copy (peers, transits, pipe ends) are cleared, so a trial's process is the segment's only
user, as after every user was killed: its close is the last one and removes the files. A
trial writes the copy under a fresh name (plain file writes, no ipcfast), corrupts it and
runs ipcfast on it. Making templates is deterministic, so a spec names the same bytes in
the fuzz and in a reproducer.

Imports only the standard library, ipcfast and tests.support (forked children use it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field as dc_field
from typing import Dict, List, Optional, Tuple

from ipcfast import Mailbox, Pipe, Queue, Ring
from ipcfast._native import lib
from tests.stress import corrupt_layout as L
from tests.support import shm

KINDS = ("Ring", "Queue", "Mailbox", "Pipe")
#: a message of the templates: (body, priority, type)
Msg = Tuple[bytes, int, int]


@dataclass
class SegFile:
    """One file of a template: ``label`` "seg" (the object's own segment) or "ring<gen>"
    (a queue's ring ``<name>.<gen>``), its layout ``kind`` (a key of corrupt_layout.BLOCKS),
    the pristine bytes, the data capacity, and where its blocks are: (label, struct, file
    offset) for the header page, then one per message ("rec<i>" / "slot<i>")."""
    label: str
    kind: str
    data: bytes
    cap: int
    blocks: List[Tuple[str, str, int]] = dc_field(default_factory=list)
    #: ring records: (data position, body length) of "rec<i>"
    records: List[Tuple[int, int]] = dc_field(default_factory=list)
    #: mailbox: indexes of the slots that hold a message
    full_slots: List[int] = dc_field(default_factory=list)

    def block(self, label: str) -> Tuple[str, int]:
        """(struct, file offset) of block *label*."""
        for lab, struct, base in self.blocks:
            if lab == label:
                return struct, base
        if label.startswith("slot") and label[4:].isdigit():     # any slot, even unused
            ctl = self.values("ctl")
            return L.MESSAGE_STRUCTS["slot"], L.data_offset() + int(label[4:]) * ctl["stride"]
        raise KeyError(f"{self.label} has no block {label!r}")

    def values(self, label: str) -> Dict[str, int]:
        struct, base = self.block(label)
        return L.block_values(self.data, struct, base)

    def names(self, label: Optional[str] = None) -> Dict[str, int]:
        """Names for value expressions ("tail+8"): header fields as hdr_<field>, control and
        pipe block fields bare (data.seq -> data_seq, param[1] -> hdr_param1), the message
        block's own fields (slot: s_<field>, and self = index + 1; record: len, rest = bytes
        from it to the tail), cap, size, used (ring bytes held), qsize (queue items)."""
        ns = {"cap": self.cap, "size": len(self.data)}
        for lab, struct, base in L.header_blocks(self.kind):
            prefix = "hdr_" if lab == "hdr" else ""
            for path, v in L.block_values(self.data, struct, base).items():
                ns[prefix + _ident(path)] = v
        if "head" in ns and "tail" in ns:
            ns["used"] = (ns["tail"] - ns["head"]) % (1 << 64)
        if "items_put" in ns:
            ns["qsize"] = ns["items_put"] - ns["items_got"]
        if label and label.startswith("rec"):
            pos, length = self.records[int(label[3:])]
            ns["len"], ns["rest"] = length, (ns["tail"] - pos) % (1 << 64)
        elif label and label.startswith("slot"):
            ns["self"] = int(label[4:]) + 1
            ns.update({"s_" + _ident(p): v for p, v in self.values(label).items()})
        return ns

    def locate(self, off: int) -> str:
        """Name the byte at file offset *off*: "ctl.head+2", "rec3.length", "rec3 body",
        "slot2 body", "data (free)", "header page (unused)"."""
        hdr = L.data_offset()
        for lab, struct, base in L.header_blocks(self.kind):
            if base <= off < base + L.struct_size(struct):
                return f"{lab}.{L.locate_in(struct, off - base)}"
        if off < hdr:
            return "header page (unused)"
        if off >= len(self.data):
            return "past the end"
        d = off - hdr
        if self.records:
            rec_struct = L.MESSAGE_STRUCTS["rec"]
            for i, (pos, length) in enumerate(self.records):
                k = (d - pos) % self.cap
                if k < L.struct_size(rec_struct):
                    return f"rec{i}.{L.locate_in(rec_struct, k)}"
                if k < L.struct_size(rec_struct) + length:
                    return f"rec{i} body"
            return "data (free)"
        if self.kind == "mailbox":
            stride = self.values("ctl")["stride"]
            i, k = divmod(d, stride)
            slot = L.MESSAGE_STRUCTS["slot"]
            if k < L.struct_size(slot):
                return f"slot{i}.{L.locate_in(slot, k)}"
            used = i in self.full_slots and k < L.struct_size(slot) + self.values(f"slot{i}")["length"]
            return f"slot{i} body" if used else f"slot{i} (unused)"
        return "data"


@dataclass
class Template:
    """What the fuzz corrupts for one kind: its files, and the messages a reader takes from
    it, in order (bodies; for the mailbox also priority and type)."""
    kind: str
    files: Dict[str, SegFile]
    expected: List[Msg]

    def path(self, name: str, label: str) -> str:
        """The /dev/shm path of file *label* of a copy named *name*."""
        return shm.path(name if label == "seg" else f"{name}.{label[4:]}")

    def write(self, name: str) -> None:
        """Write a pristine copy of the files under *name* (FileExistsError if taken)."""
        for label, f in self.files.items():
            fd = os.open(self.path(name, label), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, f.data)
            finally:
                os.close(fd)

    def remove(self, name: str) -> List[str]:
        """Remove every file of the copy *name*, the rings a trial made included."""
        return shm.remove_segments(name)


def _ident(path: str) -> str:
    return path.replace(".", "_").replace("[]", "").replace("[", "").replace("]", "")


def _snapshot(label: str, kind: str, name: str) -> SegFile:
    """Copy segment *name*'s file and find its blocks; clear its process tables."""
    with open(shm.path(name), "rb") as fh:
        data = bytearray(fh.read())
    hdr = L.block_values(data, "struct ipcf_seg_hdr", 0)
    f = SegFile(label, kind, b"", hdr["capacity"], list(L.header_blocks(kind)))
    for _, struct, base in f.blocks:
        for fl in L.fields(struct):
            if fl.path in L.USER_TABLES:
                data[base + fl.offset:base + fl.offset + fl.span] = bytes(fl.span)
    f.data = bytes(data)
    msg = L.MESSAGES[kind]
    if msg == "rec":
        ctl = f.values("ctl")
        pos, rec = ctl["head"], L.MESSAGE_STRUCTS["rec"]
        while pos != ctl["tail"] and len(f.records) < 10_000:
            off = L.data_offset() + pos % f.cap
            length = L.read_int(data, off + L.field(rec, "length").offset, L.field(rec, "length").size)
            f.blocks.append((f"rec{len(f.records)}", rec, off))
            f.records.append((pos, length))
            pos += (lib.IPCF_REC_HDR + length + 7) & ~7
    elif msg == "slot":
        ctl = f.values("ctl")
        for i in range(ctl["nslots"]):
            base = L.data_offset() + i * ctl["stride"]
            f.blocks.append((f"slot{i}", L.MESSAGE_STRUCTS["slot"], base))
            if i < ctl["high_water"] and L.block_values(data, L.MESSAGE_STRUCTS["slot"], base)["state"] != lib.IPCF_SLOT_FREE:
                f.full_slots.append(i)
    return f


def _ring() -> Template:
    name = shm.new_name("cfzt")
    r = Ring(4096, name=name)
    try:
        for _ in range(30):                  # move the positions on: records wrap the end
            r.send_bytes(bytes(100))
            r.recv_bytes()
        msgs = [bytes([65 + i]) * n for i, n in enumerate((0, 1, 7, 200, 1000, 64, 300))]
        for m in msgs:
            r.send_bytes(m)
        files = {"seg": _snapshot("seg", "ring", name)}
    finally:
        r.close()
    return Template("Ring", files, [(m, 0, 0) for m in msgs])


def _queue() -> Template:
    name = shm.new_name("cfzt")
    q = Queue(capacity=4096, name=name, dumps=bytes, loads=bytes)
    try:
        items = [bytes([65 + i % 26]) * (50 + (i * 37) % 300) for i in range(40)]
        for it in items:
            q.put(it)
        for _ in range(10):
            q.get(timeout=5)
        files = {"seg": _snapshot("seg", "queue", name)}
        for ring in shm.ring_segments(name):
            label = "ring" + ring.rsplit(".", 1)[1]
            files[label] = _snapshot(label, "queue-ring", ring)
    finally:
        q.close()
    return Template("Queue", files, [(it, 0, 0) for it in items[10:]])


def _mailbox() -> Template:
    name = shm.new_name("cfzt")
    mb = Mailbox(name, capacity=1 << 16, max_message=8192, max_messages=8)
    try:
        sends = [(b"a" * 10, 0, 1), (b"b" * 100, 5, 2), (b"c" * 5000, 1, 3), (b"d" * 300, 5, 4),
                 (b"e" * 20, -3, 5)]
        for body, prio, typ in sends:
            mb.send_bytes(body, priority=prio, type=typ)
        mb.send_bytes(b"f" * 30, to="someone-else")          # never ours to receive
        first = mb.recv_bytes(timeout=5)                       # frees a slot: a free list
        assert first.body == b"b" * 100
        mb.send_bytes(b"g" * 6000, priority=2, type=6)         # a large body, in that slot
        files = {"seg": _snapshot("seg", "mailbox", name)}
    finally:
        mb.close()
    expected = [(b"d" * 300, 5, 4), (b"g" * 6000, 2, 6), (b"c" * 5000, 1, 3), (b"a" * 10, 0, 1),
                (b"e" * 20, -3, 5)]
    return Template("Mailbox", files, expected)


def _pipe() -> Template:
    r, w = Pipe(duplex=False, capacity=4096)
    name = r._rx.name
    try:
        for _ in range(20):
            w.send_bytes(bytes(150))
            r.recv_bytes()
        msgs = [bytes([97 + i]) * n for i, n in enumerate((3, 0, 500, 40, 1200, 9))]
        for m in msgs:
            w.send_bytes(m)
        files = {"seg": _snapshot("seg", "pipe", name)}
    finally:
        r.close()
        w.close()
    return Template("Pipe", files, [(m, 0, 0) for m in msgs])


BUILDERS = {"Ring": _ring, "Queue": _queue, "Mailbox": _mailbox, "Pipe": _pipe}


def build(kind: str) -> Template:
    """Make the template of *kind* (one of KINDS); leaves no segment behind."""
    return BUILDERS[kind]()
