"""The one formatter set for people: sizes in binary units, ages, times, and names with their
control characters escaped (:func:`printable`)."""

from __future__ import annotations

import datetime as dt
import re


def human_size(n: float) -> str:
    """``"512 B"``, ``"1.5 KiB"``, ``"2.0 GiB"``: binary units (1 KiB = 1024 B) everywhere."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size if unit == "B" else round(size, 1)) < 1024 or unit == "TiB":
            return f"{int(size):,} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_age(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3 h 5 min"``, ``"4 d 2 h"``."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    m = s // 60
    if m < 120:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def format_time(when: dt.datetime | None, now: dt.datetime) -> str:
    """Local time with its age: ``"2026-11-29 10:00:00 (3 min ago)"``, or ``"never"``."""
    if when is None:
        return "never"
    local = when.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"{local} ({format_age((now - when).total_seconds())} ago)"


def _escape_char(c: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c)
    if named:
        return named
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 and C1 controls, DEL, line/paragraph separators and lone surrogates: what a terminal acts on
# or a line-based reader splits at. Everything else (a backslash, quotes, %) is left as it is.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with control characters escaped visibly, as ``ls -b`` or ``repr`` do (ESC as
    ``\\x1b``, a newline as ``\\n``, U+009B as ``\\x9b``): for every human-readable output,
    never for ``--json``, which stays exact."""
    return _UNSAFE.sub(lambda m: _escape_char(m.group()), text)


def say(text: str = "") -> None:
    """Print one line of human-readable output, its control characters escaped."""
    print(printable(text))
