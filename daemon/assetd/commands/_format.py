"""The one formatter set for people: sizes in binary units, ages, times."""

from __future__ import annotations

import datetime as dt


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
