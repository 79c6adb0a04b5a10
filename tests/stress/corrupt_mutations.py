"""What the corruption fuzz writes: interesting values for every named field, random bytes,
and the spec strings that say exactly what a trial wrote (and make its reproducer).

Specs (several may be given; all are applied, in order):

* ``FILE:BLOCK.FIELD=VALUE`` - one named field. FILE is ``seg`` (the object's segment) or
  ``ring<gen>`` (a queue's ring ``<name>.<gen>``); BLOCK is ``hdr``, ``ctl``, ``pipe``,
  ``rec<i>`` (the i-th record from the head) or ``slot<i>``; FIELD is a path of
  corrupt_layout ("head", "data.seq", "param[1]", "peers[5]"), or for a byte array
  ``plock+8:4`` (4 bytes at +8 in it). VALUE is an integer (written little-endian in the
  field's width, negative values as two's complement) or ``fill:XX`` (every byte 0xXX).
* ``FILE@OFFSET=HEX`` - raw bytes at a file offset.

Imports only the standard library and ipcfast (forked children use it).
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from tests.stress import corrupt_layout as L
from tests.stress.corrupt_segments import SegFile, Template

#: values tried on every integer field (besides its own interesting ones)
GENERIC = ("0", "1", "ones", "smax", "smin", "orig+1", "orig-1", "flip", "random")

#: interesting values per (block type, field), as expressions over SegFile.names(); a value
#: whose names a file lacks is skipped. Block types: hdr, ctl (any control block), pipe,
#: rec, slot; "*" matches any block.
SPECIAL: Dict[Tuple[str, str], Tuple[str, ...]] = {
    # the segment header (checked on attach, except the kind parameters)
    ("hdr", "magic"): ("orig^1",),
    ("hdr", "version"): ("orig+1", "orig-1"),
    ("hdr", "kind"): ("1", "2", "3", "4", "5"),
    ("hdr", "total_size"): ("size-1", "size+4096", "size*2"),
    ("hdr", "data_offset"): ("4095", "8192"),
    ("hdr", "capacity"): ("cap//2", "cap*2", "cap+4096", "cap-4096", "4096"),
    ("hdr", "flags"): ("orig^1", "orig^2", "orig^4", "orig^8"),
    ("hdr", "param[0]"): ("qsize", "qsize-1", "2", "hdr_param0*2"),       # queue maxsize
    ("hdr", "param[1]"): ("3", "2048", "hdr_param1*2", "hdr_param1//2", "1<<40"),  # ring size
    # ring control
    ("ctl", "head"): ("tail", "tail+8", "tail+cap", "tail+cap+8", "head+4", "head+8",
                      "tail-cap-8", "head-8"),
    ("ctl", "tail"): ("head", "head-8", "head+cap", "head+cap+8", "tail+4", "tail+8", "tail+cap"),
    ("ctl", "msgs_in"): ("msgs_out-1", "msgs_out"),
    ("ctl", "msgs_out"): ("msgs_in+1",),
    ("ctl", "bytes_in"): ("bytes_out-1",),
    ("ctl", "bytes_out"): ("bytes_in+1",),
    ("ctl", "data.waiters"): ("1",),
    ("ctl", "space.waiters"): ("1",),
    ("ctl", "data.sleeping"): ("1", "1<<16", "0xffff"),     # named slot nobody holds, unnamed
    ("ctl", "space.sleeping"): ("1", "1<<16"),
    ("ctl", "data.owner[]"): ("1", "0x80000001"),           # a dead (or reaping) owner
    # queue control
    ("ctl", "write_gen"): ("read_gen-1", "write_gen+1", "write_gen+1000", "1<<40"),
    ("ctl", "read_gen"): ("write_gen", "write_gen+1", "write_gen+1000", "read_gen+1",
                          "read_gen-1"),
    ("ctl", "items_put"): ("items_got-1", "items_got", "items_put+1000"),
    ("ctl", "items_got"): ("items_put+1", "items_put"),
    ("ctl", "tasks_done"): ("items_put", "items_put+1"),
    ("ctl", "join.waiters"): ("1",),
    # mailbox control
    ("ctl", "capacity"): ("0", "1", "bytes_held", "bytes_held-1", "max_message-1"),
    ("ctl", "bytes_held"): ("capacity", "capacity+1", "bytes_held-1", "bytes_held+1"),
    ("ctl", "holder"): ("1",),
    ("ctl", "nslots"): ("nslots+1", "nslots*2", "high_water-1", "nslots-1"),
    ("ctl", "stride"): ("4096", "stride+4096", "stride-4096", "stride*2"),
    ("ctl", "max_message"): ("stride", "stride-127", "max_message+1", "max_message-1"),
    ("ctl", "policy"): ("1", "2"),
    ("ctl", "count"): ("count+1", "count-1"),
    ("ctl", "free_head"): ("nslots", "nslots+1", "ready_head", "high_water+1"),
    ("ctl", "high_water"): ("nslots", "nslots+1", "high_water-1"),
    ("ctl", "ready_head"): ("nslots+1", "free_head", "ready_tail", "high_water+1", "nslots"),
    ("ctl", "ready_tail"): ("nslots+1", "free_head", "ready_head", "nslots"),
    ("ctl", "receivers_waiting"): ("1",),
    ("ctl", "inflight"): ("1", "5"),
    ("ctl", "tails_partial"): ("1",),
    ("ctl", "tail_prio[]"): ("5", "2"),
    ("ctl", "tail_slot[]"): ("nslots+1", "ready_head", "free_head", "nslots"),
    # a mailbox slot header
    ("slot", "state"): ("0", "1", "2", "3", "4", "5", "6"),
    ("slot", "flags"): ("1", "2"),
    ("slot", "length"): ("max_message", "max_message+1", "stride", "stride-127", "s_length+1",
                         "s_length+4096", "0xfffffff0", "capacity+1"),
    ("slot", "next"): ("self", "nslots", "nslots+1", "ready_head", "free_head", "s_prev"),
    ("slot", "prev"): ("self", "nslots+1", "ready_tail", "s_next"),
    ("slot", "seq"): ("next_seq", "next_seq+1"),
    ("slot", "owner"): ("1",),
    ("slot", "waiter"): ("1",),
    ("slot", "to"): ("1",),
    # a ring record header
    ("rec", "length"): ("len+1", "len+8", "len-1", "rest", "rest+1", "rest-8", "cap", "cap-8",
                        "cap-7", "0xfffffff0", "used", "used+8"),
}


@dataclass
class Mutation:
    """One trial's corruption: the specs it writes, where ("seg:ctl.head", "ring1:rec3
    body") and what ("tail+8", "4 random bytes"), and how ("field" or "bytes")."""
    specs: List[str]
    where: str
    what: str
    mode: str


def _block_type(label: str) -> str:
    return "rec" if label.startswith("rec") else "slot" if label.startswith("slot") else label


def _generic(label: str, f: L.Field, orig: int, rng: random.Random) -> Tuple[int, str]:
    bits = 8 * f.size
    if label == "ones":
        return (1 << bits) - 1, label
    if label == "smax":
        return (1 << (bits - 1)) - 1, label
    if label == "smin":
        return 1 << (bits - 1), label
    if label == "flip":
        k = rng.randrange(bits)
        return orig ^ (1 << k), f"orig^(1<<{k})"
    if label == "random":
        return rng.getrandbits(bits), "random"
    raise KeyError(label)


def field_value(label: str, f: L.Field, ns: Dict[str, int], orig: int,
                rng: random.Random) -> Optional[Tuple[int, str]]:
    """(value, label) of value expression *label* for field *f*, or None when it does not
    apply to this file (a name it lacks)."""
    try:
        return _generic(label, f, orig, rng)
    except KeyError:
        pass
    try:
        v = eval(label, {"__builtins__": {}}, dict(ns, orig=orig))   # our own table only
    except (NameError, ZeroDivisionError):
        return None
    return int(v) % (1 << (8 * f.size)), label


# ---- the field list of a kind ----

def named_fields(t: Template) -> List[Tuple[str, str, str, L.Field]]:
    """Every (file class, block label or type, struct, field) of template *t*: file class
    "seg" or "ring" (all of a queue's rings), block "hdr"/"ctl"/"pipe" or "rec"/"slot"."""
    out, seen = [], set()
    for label, f in t.files.items():
        cls = "ring" if label.startswith("ring") else "seg"
        blocks = [(b, s) for b, s, _ in L.header_blocks(f.kind)]
        msg = L.MESSAGES[f.kind]
        if msg:
            blocks.append((msg, L.MESSAGE_STRUCTS[msg]))
        for b, struct in blocks:
            if (cls, b) in seen:
                continue
            seen.add((cls, b))
            out.extend((cls, b, struct, fl) for fl in L.fields(struct))
    return out


def _files_of(t: Template, cls: str) -> List[SegFile]:
    return [f for lab, f in t.files.items() if (lab.startswith("ring")) == (cls == "ring")]


def _instance(f: SegFile, block: str, rng: random.Random) -> Optional[str]:
    if block == "rec":
        return f"rec{rng.randrange(len(f.records))}" if f.records else None
    if block == "slot":
        nslots = f.values("ctl")["nslots"]
        if f.full_slots and rng.random() < 0.75:
            return f"slot{rng.choice(f.full_slots)}"
        return f"slot{rng.randrange(nslots)}"
    return block


def _int_spec(f: L.Field, values: List[str], visit: int, seg: SegFile, block: str,
              rng: random.Random) -> Tuple[str, str]:
    struct, base = seg.block(block)
    path, at = f.path, base + f.offset
    if f.form == "array":
        i = rng.randrange(f.count)
        path, at = f"{f.path[:-2]}[{i}]", at + i * f.stride
    orig = L.read_int(seg.data, at, f.size)
    ns = seg.names(block)
    for k in range(len(values)):
        got = field_value(values[(visit + k) % len(values)], f, ns, orig, rng)
        if got is not None:
            v, label = got
            return f"{seg.label}:{block}.{path}={v:#x}", label
    raise AssertionError("GENERIC always applies")


def _bytes_spec(f: L.Field, visit: int, seg: SegFile, block: str,
                rng: random.Random) -> Tuple[str, str]:
    choice = visit % 4
    if choice < 3:
        byte = (0x00, 0xff, rng.randrange(256))[choice]
        return f"{seg.label}:{block}.{f.path}=fill:{byte:02x}", f"fill {byte:#04x}"
    k = 4 * rng.randrange(max(1, f.size // 4))
    word = L.Field(f.path, 0, 4)
    v, label = _generic(rng.choice(("ones", "smax", "smin", "random", "flip")), word, 0, rng) \
        if rng.random() < 0.6 else (rng.choice((0, 1, 2)), "small")
    return f"{seg.label}:{block}.{f.path}+{k}:4={v:#x}", f"u32 at +{k} = {label}"


def plan(t: Template, n: int, rng: random.Random, bytes_share: float = 1 / 3) -> List[Mutation]:
    """*n* corruptions of template *t*: about *bytes_share* random bytes, the rest named
    fields taken in turn (a shuffled cycle over every named field, so that n >= 1.5 x the
    number of fields covers each), each with the next of its values: its own interesting
    ones (SPECIAL) alternating with the GENERIC ones."""
    fields = named_fields(t)
    rng.shuffle(fields)
    orders: Dict[int, List[str]] = {}
    visits: Dict[int, int] = {}
    out: List[Mutation] = []
    nf = 0
    for _ in range(n):
        if rng.random() < bytes_share:
            out.append(_random_bytes(t, rng))
            continue
        idx = nf % len(fields)
        nf += 1
        cls, block, struct, f = fields[idx]
        seg = rng.choice(_files_of(t, cls))
        inst = _instance(seg, block, rng)
        if inst is None:                      # (a ring without records: its header then)
            seg, inst = next((s, _instance(s, block, rng)) for s in _files_of(t, cls) if s.records)
        visit = visits.get(idx, 0)
        visits[idx] = visit + 1
        if f.form == "bytes":
            spec, what = _bytes_spec(f, visit, seg, inst, rng)
        else:
            if idx not in orders:
                special = list(SPECIAL.get((_block_type(block), f.path), ()) or
                               SPECIAL.get(("*", f.path), ()))
                generic = list(GENERIC)
                rng.shuffle(special)
                rng.shuffle(generic)
                orders[idx] = _interleave(special, generic)
            spec, what = _int_spec(f, orders[idx], visit, seg, inst, rng)
        out.append(Mutation([spec], f"{seg.label}:{_block_type(inst)}.{f.path}", what, "field"))
    return out


def _interleave(a: List[str], b: List[str]) -> List[str]:
    """a[0], b[0], a[1], b[1], ... then the rest of the longer one."""
    out = [x for pair in zip(a, b) for x in pair]
    return out + a[len(b):] + b[len(a):]


def _random_bytes(t: Template, rng: random.Random) -> Mutation:
    labels = list(t.files)
    seg = t.files["seg" if len(labels) == 1 or rng.random() < 0.4 else rng.choice(labels[1:])]
    size, hdr = len(seg.data), L.data_offset()
    region = rng.choice(("header", "control", "messages", "messages", "anywhere"))
    specs, hit = [], []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        n = rng.choice((1, 2, 4, 8, rng.randint(1, 32)))
        if region == "header":
            off = rng.randrange(L.struct_size("struct ipcf_seg_hdr"))
        elif region == "control":
            _, struct, base = rng.choice(L.header_blocks(seg.kind)[1:])
            off = base + rng.randrange(L.struct_size(struct))
        elif region == "messages" and seg.records:
            pos, length = rng.choice(seg.records)
            off = hdr + (pos + rng.randrange(_rec_hdr_size() + length)) % seg.cap
        elif region == "messages" and seg.full_slots:
            i = rng.choice(seg.full_slots)
            _, base = seg.block(f"slot{i}")
            off = base + rng.randrange(L.struct_size(L.MESSAGE_STRUCTS["slot"]) +
                                       seg.values(f"slot{i}")["length"])
        else:
            off = rng.randrange(size)
        n = max(1, min(n, size - off))
        data = bytes(rng.randrange(256) for _ in range(n))
        specs.append(f"{seg.label}@{off:#x}={data.hex()}")
        for k in range(n):                    # every field the bytes land in, in order
            loc = _loc_class(seg.locate(off + k))
            if loc not in hit:
                hit.append(loc)
    total = sum(len(s.split("=")[1]) // 2 for s in specs)
    what = f"{total} random byte{'s' * (total > 1)}" + (f" in {len(specs)} places" if len(specs) > 1 else "")
    return Mutation(specs, f"{seg.label}:{_where(hit)}", what, "bytes")


def _where(hit: List[str]) -> str:
    """The fields random bytes landed in, sorted; bodies, free space and padding are left
    out when they hit a field that means something."""
    def filler(loc: str) -> bool:
        return (loc.endswith(("body", "(free)", "(unused)", "data")) or
                re.search(r"\.pad\d*$", loc) is not None)
    fields = sorted({h for h in hit if not filler(h)})
    return " + ".join(fields or sorted(set(hit)))


def _rec_hdr_size() -> int:
    """Bytes of a ring record header."""
    return L.struct_size(L.MESSAGE_STRUCTS["rec"])


def _loc_class(loc: str) -> str:
    """Group random-byte locations: "rec3.length+1" -> "rec.length", "slot2 body" -> "slot
    body", "ctl.peers[5]+2" stays "ctl.peers[]"."""
    loc = re.sub(r"^(rec|slot)\d+", r"\1", loc)
    loc = re.sub(r"\+\d+$", "", loc)
    return re.sub(r"\[\d+\]", "[]", loc)


# ---- applying specs ----

_FIELD = re.compile(r"^(?P<file>[a-z]+\d*):(?P<block>[a-z]+\d*)\.(?P<path>[^=+]+?)"
                    r"(?:\+(?P<sub>\d+):(?P<width>\d+))?=(?P<value>.+)$")
_BYTES = re.compile(r"^(?P<file>[a-z]+\d*)@(?P<off>(0x)?[0-9a-fA-F]+)=(?P<hex>[0-9a-fA-F]+)$")


def resolve(t: Template, spec: str) -> Tuple[str, int, bytes]:
    """(file label, file offset, bytes to write) of *spec* (ValueError if malformed)."""
    m = _BYTES.match(spec)
    if m:
        return m["file"], int(m["off"], 0), bytes.fromhex(m["hex"])
    m = _FIELD.match(spec)
    if not m:
        raise ValueError(f"not a corruption spec: {spec!r}")
    seg = t.files[m["file"]]
    struct, base = seg.block(m["block"])
    path = m["path"]
    f = L.field(struct, path)
    at = base + f.offset
    idx = re.search(r"\[(\d+)\]$", path)
    if f.form == "array" and idx:
        at += int(idx[1]) * f.stride
    size = f.size
    if m["sub"] is not None:
        at, size = at + int(m["sub"]), int(m["width"])
    value = m["value"]
    if value.startswith("fill:"):
        return m["file"], at, bytes([int(value[5:], 16)]) * size
    v = int(value, 0) % (1 << (8 * size))
    return m["file"], at, v.to_bytes(size, "little")


def apply(t: Template, name: str, specs: List[str]) -> None:
    """Write *specs* into the copy *name* of template *t* (plain file writes)."""
    for spec in specs:
        label, off, data = resolve(t, spec)
        fd = os.open(t.path(name, label), os.O_WRONLY)
        try:
            os.pwrite(fd, data, off)
        finally:
            os.close(fd)
