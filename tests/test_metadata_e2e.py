"""The real `assetd run` process (real inotify, real SQLite file): an editor's atomic save is an
edit of the file (it keeps its tags; no info named after the temporary file), and automatic
directory tags follow a renamed directory (DESIGN §2, §4; docs/content-rules.md, rules 5, 7)."""

from __future__ import annotations

import os
from pathlib import Path

from daemon_harness import Daemon
from helpers import wait_until


def test_atomic_save_and_directory_rename_live(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    (root / "group2").mkdir(parents=True)
    notes = root / "group2/notes.md"
    notes.write_bytes(b"version 1")
    d = Daemon(tmp_path, {"lib": root})
    d.config.write_text(
        f'[daemon]\nstate_dir = "{d.state}"\n[watch]\nquiet_ms = 20\n'
        f'[[roots]]\nname = "lib"\npath = "{root}"\ntags = ["lib"]\ntags_from_dirs = true\n'
    )
    try:
        d.start()
        wait_until(lambda: d.is_live(notes), 15, what="notes.md catalogued")
        d.add_manual_tag(notes, "project")
        swap = root / "group2/.notes.md.swp"
        swap.write_bytes(b"version 2, saved by the editor")
        d.barrier(root)  # the temporary file is catalogued on its own first
        os.rename(swap, notes)  # the atomic save
        d.barrier(root)
        assert d.tags(notes) == {"project", "lib", "group2"}
        assert d.query("SELECT count(*) FROM asset_infos WHERE name = ?", ".notes.md.swp") == [(0,)]
        row = d.row(notes)
        assert row is not None and row[1] in ("replaced", "live")
        (root / "group2").rename(root / "group2-renamed")
        d.barrier(root)
        moved = root / "group2-renamed/notes.md"
        assert d.tags(moved) == {"project", "lib", "group2-renamed"}
        pathless = d.query(
            "SELECT count(*) FROM assets a WHERE NOT EXISTS "
            "(SELECT 1 FROM asset_cache_states c WHERE c.asset_id = a.id)"
        )
        assert pathless == [(0,)]
    finally:
        code = d.stop()
        d.close()
    assert code == 0, d.log_text()
