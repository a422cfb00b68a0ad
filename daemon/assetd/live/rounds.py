"""What the bulk emitters hand a handler for one read round (:mod:`assetd.live.inotify_bulk`,
:mod:`assetd.live.fanotify_emitter`): an :class:`EventBatch` of watchdog events and
:class:`PathRun` runs, in kernel order. A run is many records of one kind, one path each, with
no event object made per record (a burst's round of deletions is a list of paths)."""

from __future__ import annotations

from watchdog.events import FileModifiedEvent, FileSystemEvent

__all__ = ["EventBatch", "PathRun", "spelled"]


class PathRun(FileSystemEvent):
    """Records of one kind that came one after the other, each naming one path: ``cls`` is the
    watchdog event class each stands for (a file created, deleted or modified, a directory
    deleted) and ``paths`` are theirs, in kernel order. A burst's thousands of deletions in a
    round are one object here, not an event object each (``src_path`` is the watched root)."""

    event_type = "run"

    def __init__(
        self,
        src_path: str,
        cls: type[FileSystemEvent],
        paths: list[str],
        *,
        written: bool = False,
    ) -> None:
        super().__init__(src_path)
        self.cls = cls
        self.paths = paths
        self.written = written
        """Files created and then written (``cls`` is ``FileCreatedEvent``): each path stands
        for its creation and then its write, as the two records came one after the other."""

    __eq__ = object.__eq__
    __hash__ = object.__hash__


class EventBatch(FileSystemEvent):
    """The events of one read round, in kernel order (``src_path`` is the watched root).
    ``items`` holds events and :class:`PathRun` runs; ``events`` is every event one by one."""

    event_type = "batch"

    def __init__(self, src_path: str, items: tuple[FileSystemEvent, ...]) -> None:
        super().__init__(src_path)
        self.items = items

    @property
    def events(self) -> tuple[FileSystemEvent, ...]:
        """``items`` with each run spelled out as its events (a handler that wants objects)."""
        out: list[FileSystemEvent] = []
        for item in self.items:
            if type(item) is PathRun:
                out += spelled(item)
            else:
                out.append(item)
        return tuple(out)

    # by identity: the observer's queue drops an event equal to the one before it (watchdog's
    # SkipRepeatsQueue), and two rounds of the same root would compare equal field by field
    __eq__ = object.__eq__
    __hash__ = object.__hash__


def spelled(run: PathRun) -> list[FileSystemEvent]:
    """The events ``run`` stands for, one by one, in order."""
    if run.written:
        return [e for p in run.paths for e in (run.cls(p), FileModifiedEvent(p))]
    return [run.cls(p) for p in run.paths]
