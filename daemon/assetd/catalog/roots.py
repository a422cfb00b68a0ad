"""Root rows: registration of this host's configured roots, their state, automatic tags."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import case, delete, false, func, or_, select, update
from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.cleanup import note_pathless
from assetd.catalog.models import Root
from assetd.catalog.models import cache_states as cs
from assetd.catalog.models import roots as roots_table
from assetd.catalog.states import Reason, utcnow
from assetd.rootfacts import (
    PROBE_TIMEOUT,
    Presence,
    Recorded,
    RootFacts,
    Why,
    judge,
    look,
    probe_within,
)

_log = log.get_logger(__name__)


class RootState:
    WATCHING = "watching"
    POLLING = "polling"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"
    COVERED = "covered"  # another filesystem is mounted over the root: its files are hidden

    AWAY = (UNAVAILABLE, COVERED)


class RootSettings(Protocol):
    """What registration needs of a configured root (``config.RootConfig`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def tags_from_dirs(self) -> bool: ...
    @property
    def follow_symlinks(self) -> bool: ...
    @property
    def polling(self) -> bool: ...
    @property
    def shared(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RootSpec:
    """A configured root as the catalog knows it: its row id plus what the walk needs."""

    id: int
    name: str
    path: str
    tags: tuple[str, ...] = ()
    tags_from_dirs: bool = False
    follow_symlinks: bool = False
    polling: bool = False
    ignore: tuple[str, ...] = ()
    device: int | None = None
    is_mount: bool = False
    shared: str = ""  # a share's label (DESIGN §7): its hashes are trusted across hosts


def automatic_tags(root: RootSpec, file_path: str) -> tuple[str, ...]:
    """The root's tags, plus (with ``tags_from_dirs``) each directory below the root, lowercased."""
    if not root.tags_from_dirs:
        return root.tags
    top = root.path.rstrip("/") + "/"
    if file_path.startswith(top):  # the usual case: plain slicing (relpath costs 30x more)
        rel = file_path[len(top) :].rpartition("/")[0] or "."
    else:
        rel = os.path.relpath(os.path.dirname(file_path), root.path)
    dirs = [] if rel == "." else [d.lower() for d in rel.split("/") if d]
    seen = dict.fromkeys((*root.tags, *dirs))
    return tuple(seen)


def register_roots(
    session: Session, host: str, configs: Sequence[RootSettings], ignore: Sequence[str] = ()
) -> list[RootSpec]:
    """Create or update this host's root rows for the configured roots; returns their specs.

    A root's device and mount status are recorded when it is first seen (or its path changes)
    and then kept: a later unplug (no longer a mount point) or cover (now one) is judged against
    that record (:func:`assetd.rootfacts.judge`), never silently overwritten. The record is
    updated only when the two agree on what the root is (a mount point remounted with a new
    device number), or when a root with nothing catalogued is now a mount point (the disk was
    mounted after the root was configured: nothing of ours is hidden).
    """
    specs: list[RootSpec] = []
    for rc in configs:
        row = session.execute(
            select(Root).where(Root.host == host, Root.name == rc.name)
        ).scalar_one_or_none()
        facts = probe_within(rc.path, PROBE_TIMEOUT)  # a hung mount does not hang the start
        if row is None:
            row = Root(host=host, name=rc.name, path=rc.path, shared=rc.shared)
            row.state = RootState.POLLING if rc.polling else RootState.WATCHING
            session.add(row)
            session.flush()
            _decide_record(session, row, facts, fresh=True)
        else:
            _decide_record(session, row, facts, fresh=row.path != rc.path)
        row.path = rc.path
        row.shared = rc.shared
        session.flush()
        specs.append(
            RootSpec(
                id=row.id,
                name=rc.name,
                path=rc.path,
                tags=tuple(rc.tags),
                tags_from_dirs=rc.tags_from_dirs,
                follow_symlinks=rc.follow_symlinks,
                polling=rc.polling,
                ignore=tuple(ignore),
                device=row.device,
                is_mount=row.is_mount,
                shared=rc.shared,
            )
        )
    return specs


def _decide_record(session: Session, row: Root, facts: RootFacts, *, fresh: bool) -> None:
    """Which of the recorded and the current facts is true (see :func:`register_roots`)."""
    if facts.error is not None or not facts.is_dir or facts.device is None:
        return  # nothing to learn from a root that is not there
    if fresh or row.device is None:
        row.device, row.is_mount = facts.device, facts.is_mount
        return
    verdict = judge(facts, Recorded(row.device, row.is_mount))
    if verdict.present:
        if row.is_mount:
            row.device = facts.device  # a remount: same mount point, a new device number
    elif verdict.presence == Presence.COVERED and not has_rows_to_hide(session, row.id):
        row.device, row.is_mount = facts.device, facts.is_mount


def has_rows_to_hide(session: Session, root_id: int) -> bool:
    """Whether a root has rows a cover would hide: live ones, or ones marked ``root-covered``."""
    query = (
        select(cs.c.id)
        .where(
            cs.c.root_id == root_id,
            or_(cs.c.is_missing == false(), cs.c.state_reason == Reason.ROOT_COVERED),
        )
        .limit(1)
    )
    return session.execute(query).first() is not None


def record_root_facts(session: Session, root_id: int, device: int | None, is_mount: bool) -> None:
    """The root's device and mount status, once decided (see :func:`register_roots`)."""
    session.execute(
        update(roots_table)
        .where(roots_table.c.id == root_id)
        .values(device=device, is_mount=is_mount)
    )


def host_root_ids(session: Session, host: str) -> list[int]:
    """Every root id this host owns: configured now or in the past."""
    return list(session.execute(select(Root.id).where(Root.host == host)).scalars())


def host_roots(session: Session, host: str) -> list[Root]:
    """This host's root rows, configured now or in the past."""
    return list(session.execute(select(Root).where(Root.host == host)).scalars())


def count_root_paths(session: Session, root_id: int) -> int:
    """How many path rows (live or missing) the root holds."""
    query = select(func.count()).select_from(cs).where(cs.c.root_id == root_id)
    return int(session.execute(query).scalar_one())


def delete_root(session: Session, root_id: int) -> int:
    """Remove a root row; its path rows go with it (ON DELETE CASCADE). Assets, infos and tags
    stay; an asset left with no path at all is stamped ``pathless_since``, from which
    ``cleanup`` counts it. Returns the number of assets left with no path."""
    asset_ids = list(
        session.execute(select(cs.c.asset_id).where(cs.c.root_id == root_id).distinct()).scalars()
    )
    session.execute(delete(roots_table).where(roots_table.c.id == root_id))
    return note_pathless(session, asset_ids)


def set_root_state(session: Session, root_id: int, state: str, reason: str | None = None) -> None:
    session.execute(
        update(roots_table)
        .where(roots_table.c.id == root_id)
        .values(state=state, state_reason=reason)
    )


def mark_root_away(
    session: Session,
    root: RootSpec,
    state: str,
    reason: str | None,
    now: dt.datetime | None = None,
) -> int:
    """The root went away (DESIGN §6): ``state`` is ``unavailable`` (with its ``reason``) or
    ``covered``. Its live cache states are marked missing in one statement, with
    ``state_reason`` ``root-unavailable`` or ``root-covered``; except for ``permission-denied``,
    whose rows are left as they are (what cannot be read is unknown, not gone). Nothing is
    deleted; a reconcile restores them when the root is back. Returns the rows marked."""
    now = now or utcnow()
    set_root_state(session, root.id, state, reason)
    if state == RootState.UNAVAILABLE and reason == Why.PERMISSION_DENIED:
        return 0
    row_reason = Reason.ROOT_COVERED if state == RootState.COVERED else Reason.ROOT_UNAVAILABLE
    result = session.execute(
        update(cs)
        .where(cs.c.root_id == root.id, cs.c.is_missing == false())
        .values(
            is_missing=True,
            missing_since=now,
            state_changed_at=now,
            state_reason=row_reason,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def root_present(root: RootSpec) -> bool:
    """Whether the root is there, judged against its record (as the daemon's monitor does)."""
    return look(root.path, Recorded(root.device, root.is_mount))[0].present


def settle_presence(session: Session, root: RootSpec, state: str | None) -> bool:
    """For a pass over the root (reconcile, ``scan``): True when it is there; else its rows are
    marked as :func:`mark_root_away` says, logged once (``state``: its state before), False."""
    verdict, _ = look(root.path, Recorded(root.device, root.is_mount))
    if verdict.present:
        return True
    with session.begin():
        count = mark_root_away(session, root, verdict.presence, verdict.reason)
    if state in RootState.AWAY:
        pass  # logged when it went away
    elif verdict.presence == RootState.COVERED:
        _log.warning("root.covered", root=root.name, path=root.path, missing=count)
    else:
        _log.warning(
            "root.unavailable", root=root.name, path=root.path, reason=verdict.reason, missing=count
        )
    return False


def mark_root_unavailable(
    session: Session, root: RootSpec, reason: str, now: dt.datetime | None = None
) -> int:
    """:func:`mark_root_away` with state ``unavailable``."""
    return mark_root_away(session, root, RootState.UNAVAILABLE, reason, now)


def record_reconcile(
    session: Session, root_id: int, duration_ms: int, now: dt.datetime | None = None
) -> None:
    session.execute(
        update(roots_table)
        .where(roots_table.c.id == root_id)
        .values(last_reconcile_at=now or utcnow(), last_reconcile_ms=duration_ms)
    )


def bump_epoch(session: Session, root_id: int, reason: str | None = None) -> None:
    """The pipeline may have lost events for this root (overflow, watcher restart, remount).

    With ``reason``, a watching root's ``state_reason`` becomes ``"<reason> at <UTC time>"``,
    which ``assetd status`` reports (another state keeps its own reason)."""
    now = utcnow()
    values: dict[str, object] = {"epoch": roots_table.c.epoch + 1, "last_event_at": now}
    if reason:
        note = f"{reason} at {now.strftime(EPOCH_NOTE_TIME)}"
        values["state_reason"] = case(
            (roots_table.c.state == RootState.WATCHING, note), else_=roots_table.c.state_reason
        )
    session.execute(update(roots_table).where(roots_table.c.id == root_id).values(**values))


EPOCH_NOTE_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def record_root_mode(session: Session, root_id: int, state: str, reason: str | None) -> None:
    """Record how the daemon follows a present root: ``watching``, ``polling`` (configured), or
    ``degraded`` (inotify failed, polled instead; ``reason`` says why). An ``unavailable`` root
    is left to reconcile, and a root already in ``state`` keeps its reason (an overflow note)
    unless the state is ``degraded``."""
    stmt = update(roots_table).where(
        roots_table.c.id == root_id, roots_table.c.state.not_in(RootState.AWAY)
    )
    if state != RootState.DEGRADED:
        stmt = stmt.where(roots_table.c.state != state)
    session.execute(stmt.values(state=state, state_reason=reason))


def touch_roots(session: Session, root_ids: Iterable[int], now: dt.datetime | None = None) -> None:
    """A live batch changed something in these roots: ``last_event_at`` = now."""
    ids = sorted(set(root_ids))
    if ids:
        session.execute(
            update(roots_table)
            .where(roots_table.c.id.in_(ids))
            .values(last_event_at=now or utcnow())
        )
