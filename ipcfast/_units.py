"""Sizes for people: the one place that formats byte counts (error messages, `ipcfast ls`,
the benchmark report)."""
from __future__ import annotations

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


def fmt_size(n: int, byte_word: str = "B") -> str:
    """*n* bytes exactly: "64 KiB", "1 MiB", or "4097 B" (``byte_word`` names the unit of a
    count that is no whole number of KiB)."""
    for unit, k in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= k and n % k == 0:
            return f"{n // k} {unit}"
    return f"{n} {byte_word}"


def fmt_short(n: int) -> str:
    """*n* bytes in at most 6 characters for a table column: "1.0M", "4.0K", "512"."""
    for unit, k in (("G", GiB), ("M", MiB), ("K", KiB)):
        if n >= k:
            return f"{n / k:.1f}{unit}"
    return str(n)
