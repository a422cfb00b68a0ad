"""A SIGHUP reload: what it can apply to the running daemon, and what needs a restart.

:func:`plan_reload` (pure) compares the running configuration with the new one key by key
(dotted names, as in the config file). Keys in :data:`LIVE` are applied by :func:`apply_reload`;
any other key that changed is named in ``config.restart_needed`` and keeps its running value
until the next start (:func:`effective_config` builds the configuration the daemon then runs
with). Nothing a reload reads is silently ignored.

:func:`apply_reload` runs on the service's main thread, between two of its loop's ticks; the
pipeline takes the new roots between two batches (``Worker.set_roots``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assetd import log
from assetd.catalog.roots import RootSpec
from assetd.config import Config
from assetd.errors import AssetdError, ConfigError
from assetd.fsutil import IgnoreRules

if TYPE_CHECKING:
    from assetd.service import Service

__all__ = ["LIVE", "ReloadPlan", "apply_reload", "effective_config", "plan_reload"]

_log = log.get_logger(__name__)

LIVE = frozenset(
    {
        "roots",
        "watch.ignore",
        "watch.quiet_ms",
        "watch.min_quiet_ms",
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

_SECTIONS = ("daemon", "database", "watch", "reconcile", "hashing", "log", "api")


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


def apply_reload(svc: Service) -> None:
    """Re-read the config and apply it to ``svc`` (``RELOADING=1`` ... ``READY=1``). An invalid
    file, or roots that cannot be registered, keep the running configuration."""
    svc.notifier.reloading()
    try:
        loaded = svc.reload_config()
    except ConfigError as err:
        _log.error("config.invalid", error=str(err), action="kept the running configuration")
        svc.notifier.ready()
        return
    assert svc.catalog is not None
    old = svc.config
    plan = plan_reload(old, loaded)
    new = effective_config(old, loaded, plan)
    svc.catalog.config = new
    try:
        specs = svc.catalog.register_roots()
    except (AssetdError, OSError) as err:
        svc.catalog.config = old
        _log.error("config.reload_failed", error=str(err), action="kept the running configuration")
        svc.notifier.ready()
        return
    svc.config = new
    if plan.restart_needed:
        _log.warning(
            "config.restart_needed",
            keys=plan.restart_needed,
            action="kept their running values; restart the daemon to apply them",
        )
    if "watch.ignore" in plan.applied:  # the roots' specs changed too: re-added below
        svc.watchers.set_ignore(IgnoreRules(new.watch.ignore))
    if {"watch.quiet_ms", "watch.min_quiet_ms", "watch.max_delay_ms"} & set(plan.applied):
        w = new.watch
        svc.pipeline.debouncer.retime(w.quiet_ms, w.max_delay_ms, w.min_quiet_ms)
    if "reconcile.interval" in plan.applied:
        svc.scheduler.set_interval(new.reconcile.interval)
    if {"log.level", "log.format"} & set(plan.applied):
        log.configure_logging(new.log.format, new.log.level)
    added, removed = _apply_roots(svc, specs)
    if any(key.startswith("hashing.") for key in plan.applied):
        svc.restart_hasher()
    _log.info("config.reloaded", applied=plan.applied, added=added, removed=removed)
    svc.notifier.ready()
    svc.notifier.status(svc._status_text())


def _apply_roots(svc: Service, specs: list[RootSpec]) -> tuple[list[str], list[str]]:
    """Swap in the new root specs; re-watch and reconcile each root that is new or changed."""
    old = {r.name: r for r in svc.roots}
    new_by_name = {r.name: r for r in specs}
    for name, root in old.items():
        if name not in new_by_name or new_by_name[name] != root:
            svc.watchers.remove(name)
    svc.roots = specs
    svc.worker.set_roots(specs)
    svc.rootkeeper.monitor.set_roots(specs)  # judged from the next look on
    if svc.hasher is not None:
        svc.hasher.set_roots(specs)
    assert svc.catalog is not None
    svc.catalog.prune_removed_roots(specs)
    for root in specs:
        if root.name not in old or old[root.name] != root:
            svc._watch(root)
            svc.scheduler.request("reload", root.id)
    svc._record_root_modes()
    return sorted(set(new_by_name) - set(old)), sorted(set(old) - set(new_by_name))
