"""Where the named fields of each kind's segment files are, for the corruption fuzz.

Every offset and size comes from the cffi build (``ffi.typeof(struct).fields``,
``lib.IPCF_*_OFFSET``), never from a number written here, so the fuzz follows a change of
the shared layout. :data:`BLOCKS` is the one table that says which struct sits where in the
header page of which kind of file; an entry whose struct or offset constant this build does
not know is skipped (a Pipe's end tables are in ``struct ipcf_ring_ctl`` up to layout 1 and
in their own ``struct ipcf_pipe_ctl`` at ``IPCF_PIPE_OFFSET`` from layout 2 on: both work).
The message headers in the data area (a ring record, a mailbox slot) are placed by the
template (tests/stress/corrupt_workers.py), which knows where the messages are.

Imports only the standard library and ipcfast (the fuzz's forked children use it).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ipcfast._native import ffi, lib

#: per kind of file: the blocks of its header page, as (label, struct, name of the lib
#: constant giving the block's file offset; None: offset 0)
BLOCKS: Dict[str, Tuple[Tuple[str, str, Optional[str]], ...]] = {
    "ring": (("hdr", "struct ipcf_seg_hdr", None),
             ("ctl", "struct ipcf_ring_ctl", "IPCF_CTL_OFFSET")),
    "pipe": (("hdr", "struct ipcf_seg_hdr", None),
             ("ctl", "struct ipcf_ring_ctl", "IPCF_CTL_OFFSET"),
             ("pipe", "struct ipcf_pipe_ctl", "IPCF_PIPE_OFFSET")),
    "queue": (("hdr", "struct ipcf_seg_hdr", None),
              ("ctl", "struct ipcf_queue_ctl", "IPCF_CTL_OFFSET")),
    "queue-ring": (("hdr", "struct ipcf_seg_hdr", None),
                   ("ctl", "struct ipcf_ring_ctl", "IPCF_CTL_OFFSET")),
    "mailbox": (("hdr", "struct ipcf_seg_hdr", None),
                ("ctl", "struct ipcf_mbox_ctl", "IPCF_CTL_OFFSET")),
}

#: per kind of file: the header each message in its data area starts with ("rec<i>" or
#: "slot<i>" blocks), as the struct describing it
MESSAGES: Dict[str, Optional[str]] = {
    "ring": "rec", "pipe": "rec", "queue-ring": "rec", "queue": None, "mailbox": "slot",
}
MESSAGE_STRUCTS = {"rec": "struct ipcf_rec_hdr", "slot": "struct ipcf_mbox_slot"}
#: a ring record header has no struct in the C headers: uint32 length, uint32 reserved
#: (IPCF_REC_HDR bytes). A ``struct ipcf_rec_hdr`` in a later layout takes its place.
REC_FALLBACK = (("length", 0, "uint32_t"), ("reserved", 4, "uint32_t"))

#: arrays up to this many elements are one field per element; longer ones are one field
#: whose element is picked per trial ("peers[]")
EXPAND_ARRAYS = 8
#: fields that hold process words of users: cleared in the template snapshots, so that the
#: trial process is the segment's only user (and its close is the last one)
USER_TABLES = ("peers[]", "transit[]", "writers[]", "readers[]", "pend_writers[]",
               "pend_readers[]")


@dataclass(frozen=True)
class Field:
    """One named field of a block: ``path`` as in a spec ("head", "data.seq", "param[1]",
    "peers[]", "plock"), its byte offset in the block, the size of one value, and what it is:
    "int" (one integer), "array" (``count`` integers, ``stride`` bytes apart, one picked per
    trial) or "bytes" (a byte array: padding, a pthread mutex)."""
    path: str
    offset: int
    size: int
    form: str = "int"
    signed: bool = False
    count: int = 1
    stride: int = 0

    @property
    def span(self) -> int:
        return self.size * self.count if self.form == "array" else self.size


def _known_struct(name: str) -> bool:
    try:
        ffi.typeof(name)
        return True
    except (ffi.error, TypeError):
        return False


def _walk(ctype, base: int, prefix: str, out: List[Field]) -> None:
    for name, f in ctype.fields:
        t, at, path = f.type, base + f.offset, prefix + name
        if t.kind == "struct":
            _walk(t, at, path + ".", out)
        elif t.kind == "array" and t.item.kind == "primitive" and ffi.sizeof(t.item) == 1:
            out.append(Field(path, at, t.length, "bytes"))
        elif t.kind == "array":
            size = ffi.sizeof(t.item)
            signed = t.item.cname.startswith("int")
            if t.length <= EXPAND_ARRAYS:
                out.extend(Field(f"{path}[{i}]", at + i * size, size, "int", signed)
                           for i in range(t.length))
            else:
                out.append(Field(path + "[]", at, size, "array", signed, t.length, size))
        else:
            out.append(Field(path, at, ffi.sizeof(t), "int", t.cname.startswith("int")))


@functools.lru_cache(maxsize=None)
def fields(struct: str) -> Tuple[Field, ...]:
    """Every named field of *struct*, nested structs flattened ("data.seq")."""
    if struct == MESSAGE_STRUCTS["rec"] and not _known_struct(struct):
        return tuple(Field(n, o, ffi.sizeof(t), "int", t.startswith("int"))
                     for n, o, t in REC_FALLBACK)
    out: List[Field] = []
    _walk(ffi.typeof(struct), 0, "", out)
    return tuple(out)


def field(struct: str, path: str) -> Field:
    """The field *path* of *struct* ("peers[]" and "peers[3]" both name the array)."""
    base = path.split("[")[0] + "[]" if path.endswith("]") else path
    for f in fields(struct):
        if f.path == path or f.path == base:
            return f
    raise KeyError(f"{struct} has no field {path!r} in this build")


@functools.lru_cache(maxsize=None)
def struct_size(struct: str) -> int:
    if struct == MESSAGE_STRUCTS["rec"] and not _known_struct(struct):
        return lib.IPCF_REC_HDR
    return ffi.sizeof(struct)


@functools.lru_cache(maxsize=None)
def header_blocks(kind: str) -> Tuple[Tuple[str, str, int], ...]:
    """(label, struct, file offset) of each block of the header page of a *kind* file that
    this build has."""
    out = []
    for label, struct, const in BLOCKS[kind]:
        if not _known_struct(struct) or (const is not None and not hasattr(lib, const)):
            continue
        out.append((label, struct, 0 if const is None else getattr(lib, const)))
    return tuple(out)


def data_offset() -> int:
    """Where the data area starts in every file."""
    return lib.IPCF_HDR_SIZE


def read_int(buf, offset: int, size: int, signed: bool = False) -> int:
    return int.from_bytes(bytes(buf[offset:offset + size]), "little", signed=signed)


def block_values(buf, struct: str, base: int) -> Dict[str, int]:
    """The integer fields of the block *struct* at *base* in *buf* (arrays: element 0 only,
    as ``name[]``)."""
    out = {}
    for f in fields(struct):
        if f.form != "bytes":
            out[f.path] = read_int(buf, base + f.offset, f.size, f.signed)
    return out


def locate_in(struct: str, rel: int) -> str:
    """Name the byte *rel* of a *struct* block: "head", "head+3", "peers[5]+2", "pad0+17"."""
    for f in fields(struct):
        if f.offset <= rel < f.offset + f.span:
            k = rel - f.offset
            if f.form == "array":
                name, k = f"{f.path[:-2]}[{k // f.stride}]", k % f.stride
            else:
                name = f.path
            return name if k == 0 else f"{name}+{k}"
    return f"+{rel}"
