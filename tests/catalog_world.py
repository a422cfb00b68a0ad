"""A small world for catalog tests: a real directory registered as a root in a real catalog."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from assetd.catalog.engine import SessionFactory
from assetd.catalog.models import cache_states as cs
from assetd.catalog.roots import RootSpec, register_roots
from assetd.config import RootConfig
from assetd.reconcile import ReconcileResult, sync_cache_states_with_filesystem


@dataclass
class World:
    sessions: SessionFactory
    root: RootSpec
    dir: Path
    host: str = "host-a"

    def write(self, rel: str, data: bytes = b"x") -> Path:
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def scan(self, *roots: RootSpec) -> ReconcileResult:
        with self.sessions() as s:
            return sync_cache_states_with_filesystem(s, list(roots) or [self.root])

    def state(self, rel_or_abs: str) -> dict[str, Any] | None:
        path = rel_or_abs if rel_or_abs.startswith("/") else str(self.dir / rel_or_abs)
        with self.sessions() as s:
            row = s.execute(select(cs).where(cs.c.file_path == path)).mappings().first()
            return dict(row) if row else None

    def tags_of(self, rel: str) -> dict[str, str]:
        """tag name -> origin for the infos of the asset at this path."""
        with self.sessions() as s:
            rows = s.execute(
                text(
                    "SELECT t.tag_name, t.origin FROM asset_info_tags t "
                    "JOIN asset_infos i ON i.id = t.asset_info_id "
                    "JOIN asset_cache_states c ON c.asset_id = i.asset_id "
                    "WHERE c.file_path = :p"
                ),
                {"p": str(self.dir / rel)},
            ).all()
        return {name: origin for name, origin in rows}

    def add_manual_tag(self, rel: str, tag: str) -> None:
        """As another program would: plain SQL, relying on server-side defaults."""
        with self.sessions() as s, s.begin():
            info_id = s.execute(
                text(
                    "SELECT i.id FROM asset_infos i JOIN asset_cache_states c "
                    "ON c.asset_id = i.asset_id WHERE c.file_path = :p"
                ),
                {"p": str(self.dir / rel)},
            ).scalar_one()
            s.execute(text("INSERT INTO tags (name) VALUES (:t)"), {"t": tag})
            s.execute(
                text("INSERT INTO asset_info_tags (asset_info_id, tag_name) VALUES (:i, :t)"),
                {"i": info_id, "t": tag},
            )


def make_world(
    sessions: SessionFactory,
    directory: Path,
    *,
    name: str = "lib",
    host: str = "host-a",
    tags: tuple[str, ...] = ("models",),
    ignore: tuple[str, ...] = ("*.tmp",),
    **root_kw: object,
) -> World:
    directory.mkdir(parents=True, exist_ok=True)
    rc = RootConfig(name=name, path=str(directory), tags=tags, **root_kw)  # type: ignore[arg-type]
    with sessions() as s, s.begin():
        [spec] = register_roots(s, host, [rc], ignore)
    return World(sessions, spec, directory, host)


def with_root(world: World, **changes: object) -> RootSpec:
    return replace(world.root, **changes)  # type: ignore[arg-type]
