"""What a SIGHUP reload can apply to the running daemon, and what needs a restart (pure).

:func:`plan_reload` compares the running configuration with the new one key by key (dotted
names, as in the config file). Keys in :data:`LIVE` are applied by the service; any other key
that changed is named in ``config.restart_needed`` and keeps its running value until the next
start (:func:`effective_config` builds the configuration the daemon then runs with). Nothing a
reload reads is silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from assetd.config import Config

__all__ = ["LIVE", "ReloadPlan", "effective_config", "plan_reload"]

LIVE = frozenset(
    {
        "roots",
        "watch.ignore",
        "watch.quiet_ms",
        "watch.max_delay_ms",
        "reconcile.interval",
        "hashing.enabled",
        "hashing.workers",
        "hashing.max_bytes_per_sec",
        "log.level",
        "log.format",
    }
)
"""Keys the running daemon applies on reload (``roots``: roots added, removed or changed)."""

_SECTIONS = ("daemon", "database", "watch", "reconcile", "hashing", "log")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    applied: list[str] = field(default_factory=list)
    """Changed keys the daemon applies now."""
    restart_needed: list[str] = field(default_factory=list)
    """Changed keys that keep their running value until a restart."""


def changed_keys(old: Config, new: Config) -> list[str]:
    """Dotted keys whose value differs, sorted; ``roots`` for any change to the roots. The
    resolved state directory and database URL count as ``daemon.state_dir`` and
    ``database.url`` (the environment they come from may have changed too)."""
    out: set[str] = set()
    for section in _SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        for spec in dataclasses.fields(before):
            if getattr(before, spec.name) != getattr(after, spec.name):
                out.add(f"{section}.{spec.name}")
    if old.roots != new.roots:
        out.add("roots")
    if old.state_dir != new.state_dir:
        out.add("daemon.state_dir")
    if old.database_url != new.database_url and "daemon.state_dir" not in out:
        out.add("database.url")  # (a default URL follows the state directory: that is named)
    return sorted(out)


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    keys = changed_keys(old, new)
    return ReloadPlan(
        applied=[k for k in keys if k in LIVE],
        restart_needed=[k for k in keys if k not in LIVE],
    )


def effective_config(old: Config, new: Config, plan: ReloadPlan) -> Config:
    """``new`` with every key of ``plan.restart_needed`` set back to its running value."""
    sections: dict[str, Any] = {}
    for key in plan.restart_needed:
        section, _, name = key.partition(".")
        if not name:
            continue
        current = sections.get(section, getattr(new, section))
        running = getattr(getattr(old, section), name)
        sections[section] = dataclasses.replace(current, **{name: running})
    merged = dataclasses.replace(new, **sections)
    if merged.state_dir != old.state_dir or merged.database_url != old.database_url:
        # resolved from a changed environment: the running daemon keeps its own
        object.__setattr__(merged, "resolved_state_dir", old.resolved_state_dir)
        object.__setattr__(merged, "resolved_database_url", old.resolved_database_url)
    return merged
