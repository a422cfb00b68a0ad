"""One filesystem change as the handler saw it (DESIGN §2): what the queue carries, what
:func:`assetd.live.changes.coalesce` folds into a batch. No I/O."""

from __future__ import annotations

import enum
import time
from typing import Final

__all__ = ["Change", "Kind"]


class Kind(enum.Enum):
    """What happened to a path."""

    CREATED = "created"
    DELETED = "deleted"
    MODIFIED = "modified"
    MOVED = "moved"


class Change:
    """One filesystem change, as the handler saw it. ``dest`` is set for MOVED and only for it.

    A value: never changed once made (``Final``), equal by what happened (``seen`` aside) and
    hashable. Written out rather than a frozen dataclass: a burst makes one per kernel record,
    and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field, a default factory)
    cost 2.6 us where this costs 1.1 (``docs/benchmarks.md``)."""

    __slots__ = ("dest", "is_dir", "kind", "path", "seen")

    def __init__(
        self,
        kind: Kind,
        path: str,
        is_dir: bool = False,
        dest: str | None = None,
        seen: float | None = None,
    ) -> None:
        if (kind is Kind.MOVED) != (dest is not None):
            raise ValueError(
                f"Change: dest is set exactly for MOVED changes, got {kind}, {path!r}, {dest!r}"
            )
        self.kind: Final[Kind] = kind
        self.path: Final[str] = path
        self.is_dir: Final[bool] = is_dir
        self.dest: Final[str | None] = dest
        self.seen: Final[float] = time.monotonic() if seen is None else seen
        """Monotonic time the change was made: the handler makes it as it sees the event, so a
        batch's latency (``assetd_batch_latency_seconds``) runs from its oldest change's
        ``seen`` to the commit. Not part of a change's identity (equality ignores it)."""

    def _key(self) -> tuple[Kind, str, bool, str | None]:
        return self.kind, self.path, self.is_dir, self.dest

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Change(kind={self.kind!r}, path={self.path!r}, is_dir={self.is_dir!r}, "
            f"dest={self.dest!r})"
        )
