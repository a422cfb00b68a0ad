"""The one set of "is this path under that one" helpers (component-wise, never string-wise).

Paths are absolute and normalised, in the OS form (``str``, undecodable bytes as surrogates) or
the catalog form; both compare the same way, so ``/a/bc`` is never under ``/a/b`` and a name with
undecodable bytes is under its directory exactly when its text says so. A trailing ``/`` on a
parent is ignored (``/`` itself is the parent of every absolute path).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

_T = TypeVar("_T")


def _base(parent: str) -> str:
    return parent.rstrip("/") or "/"


def is_under(path: str, parent: str) -> bool:
    """True when ``path`` is ``parent`` or lies below it."""
    base = _base(parent)
    if path == base:
        return True
    prefix = base if base == "/" else base + "/"
    return path.startswith(prefix)


def is_strictly_under(path: str, parent: str) -> bool:
    """True when ``path`` lies below ``parent`` (not ``parent`` itself)."""
    return path != _base(parent) and is_under(path, parent)


def relative_to(path: str, parent: str) -> str | None:
    """``path`` below ``parent`` without the leading ``/`` ("" for ``parent`` itself), or None
    when it is not under it."""
    base = _base(parent)
    if path == base:
        return ""
    if not is_under(path, base):
        return None
    return path[len(base) :].lstrip("/")


def rebase(path: str, src: str, dst: str) -> str:
    """``path`` (which must be under ``src``) as it reads once ``src`` is renamed to ``dst``."""
    rel = relative_to(path, src)
    if rel is None:
        raise ValueError(f"rebase: {path!r} is not under {src!r}")
    if rel == "":
        return dst
    return _base(dst).rstrip("/") + "/" + rel


def deepest_parent(items: Iterable[tuple[_T, str]], path: str) -> _T | None:
    """Of ``(item, directory)`` pairs, the item whose directory ``path`` lies strictly below,
    the deepest one; None when there is none."""
    best: tuple[_T, str] | None = None
    for item, directory in items:
        if is_strictly_under(path, directory) and (
            best is None or len(_base(directory)) > len(_base(best[1]))
        ):
            best = (item, directory)
    return None if best is None else best[0]


def is_within(child: str, parent: str) -> bool:
    """True if ``child`` is ``parent`` or below it, lexically or (when both exist) really:
    for configuration checks (a state directory inside a root, roots that nest)."""
    pairs = [(os.path.abspath(child), os.path.abspath(parent))]
    if os.path.exists(child) and os.path.exists(parent):
        pairs.append((os.path.realpath(child), os.path.realpath(parent)))
    return any(is_under(c, p) for c, p in pairs)
