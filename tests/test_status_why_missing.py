"""``assetd status``, ``why`` and ``missing`` on a real catalog (scanned from real directories,
hashed by ``assetd hash``) with live, missing, restored, unhashed and hashed rows; with and
without the real daemon running, and as a user who may only read the catalog."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

import assetd.commands.status
from assetd import __version__
from assetd.catalog.engine import make_engine, session_factory
from assetd.catalog.models import cache_states as cs
from assetd.catalog.models import daemons
from assetd.catalog.roots import RootState, bump_epoch, record_root_mode, touch_roots
from cli_world import Cli, Run, isolate, sqlite_url, tree, write_config
from daemon_harness import Daemon
from helpers import wait_until
from unprivileged import NOGROUP_GID, nobody


@dataclass
class World:
    cli: Cli
    config: Path
    lib: Path
    other: Path
    state: Path

    @property
    def url(self) -> str:
        return sqlite_url(self.state)

    def sql(self, statement: object) -> None:
        engine = make_engine(self.url)
        try:
            with session_factory(engine)() as s, s.begin():
                if isinstance(statement, str):
                    s.execute(text(statement))
                else:
                    statement(s)  # type: ignore[operator]
        finally:
            engine.dispose()

    def run(self, *argv: str | Path) -> Run:
        result = self.cli(*argv, "--config", self.config)
        assert result.code == 0, result.err
        return result


def build(cli: Cli, tmp_path: Path) -> World:
    """lib: a.bin (missing, then restored), sub/b.bin and dup/b2.bin (one content), gone/d.bin
    (missing), note.tmp (ignored), new.bin (after hashing: unhashed); other: x.bin."""
    lib = tree(
        tmp_path / "lib",
        {
            "a.bin": b"a" * 10,
            "sub/b.bin": b"b" * 20,
            "dup/b2.bin": b"b" * 20,
            "gone/d.bin": b"d" * 40,
            "note.tmp": b"t",
        },
    )
    other = tree(tmp_path / "other", {"x.bin": b"x"})
    state = tmp_path / "state"
    config = write_config(
        tmp_path / "c.toml",
        roots={"lib": lib, "other": other},
        state_dir=state,
        host="h",
        root_extra='tags = ["models"]',
    )
    w = World(cli, config, lib, other, state)
    w.run("scan")
    w.run("hash")
    (lib / "gone/d.bin").unlink()
    os.rename(lib / "a.bin", tmp_path / "a.away")
    w.run("scan")
    os.rename(tmp_path / "a.away", lib / "a.bin")  # same size and mtime: a plain restore
    (lib / "new.bin").write_bytes(b"n" * 5)
    w.run("scan")
    w.sql("INSERT INTO tags (name) VALUES ('favourite')")
    w.sql(
        "INSERT INTO asset_info_tags (asset_info_id, tag_name) SELECT i.id, 'favourite' "
        "FROM asset_infos i JOIN asset_cache_states c ON c.asset_id = i.asset_id "
        f"WHERE c.file_path = '{lib / 'sub/b.bin'}'"
    )
    return w


@pytest.fixture
def world(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> World:
    isolate(monkeypatch, tmp_path)
    return build(Cli(capsys), tmp_path)


# --- status ---------------------------------------------------------------------------------


def test_status_without_a_daemon(world: World) -> None:
    run = world.run("status")
    assert run.lines[0] == f"assetd {__version__}: host h, catalog {world.url}"
    assert run.lines[1] == "daemon:   not running (no daemon has run on this host)"
    table = run.lines[run.lines.index("") + 1 :]
    assert table[0].split() == [
        "ROOT", "STATE", "EPOCH", "LAST", "EVENT", "LAST", "RECONCILE", "LIVE", "MISSING",
        "UNHASHED", "PATH",
    ]  # fmt: skip
    lib_row = next(r for r in table if r.startswith("lib "))
    cells = lib_row.split()
    assert cells[:5] == ["lib", "not", "watched", "0", "-"]  # no live event without a daemon
    assert cells[-4:] == ["4", "1", "1", str(world.lib)]  # live, missing, unhashed (new.bin)
    assert "hashing backlog: 1 file(s), 5 B" in run.lines
    assert run.lines[-1] == "attention: nothing"

    report = json.loads(world.run("status", "--json").out)
    assert report["daemons"] == [] and report["attention"] == []
    assert report["hashing_backlog"] == {"files": 1, "bytes": 5}
    roots = {r["name"]: r for r in report["roots"]}
    assert (roots["lib"]["live"], roots["lib"]["missing"], roots["lib"]["unhashed"]) == (4, 1, 1)
    assert (roots["other"]["live"], roots["other"]["missing"]) == (1, 0)
    assert roots["lib"]["state"] == "watching" and roots["lib"]["last_reconcile_ms"] is not None


def test_status_attention_items(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    world.sql(
        lambda s: s.execute(
            daemons.insert().values(
                host="h",
                pid=int(dead.stdout),
                version=__version__,
                started_at=stale,
                heartbeat_at=stale,
                status="running",
            )
        )
    )
    ids = {name: i for i, name in _root_ids(world)}
    world.sql(lambda s: bump_epoch(s, ids["lib"], "overflow"))  # as the daemon records one
    limit = "polling instead of inotify: the inotify watch limit is reached: raise it with: sysctl"
    world.sql(lambda s: record_root_mode(s, ids["other"], RootState.DEGRADED, limit))
    monkeypatch.setattr(assetd.commands.status, "filesystem_type", lambda path: "nfs4")

    report = json.loads(world.run("status", "--json").out)
    kinds = {(a["kind"], a["root"]) for a in report["attention"]}
    assert kinds == {
        ("stale-heartbeat", None),
        ("overflow", "lib"),
        ("watch-limit", "other"),
        ("network-no-polling", "lib"),  # "other" is polled (degraded) already
    }
    [daemon] = report["daemons"]
    assert (daemon["running"], daemon["status"]) == (False, "running")
    roots = {r["name"]: r for r in report["roots"]}
    assert (roots["lib"]["epoch"], roots["other"]["state"]) == (1, "degraded")

    out = world.run("status").out
    assert f"NOT RESPONDING (said running; pid {int(dead.stdout)}" in out
    assert f"pid {int(dead.stdout)} is gone" in out
    assert "root lib lost events (overflow)" in out and "a reconcile is pending" in out
    assert "sysctl" in out

    world.run("scan")  # the reconcile after the overflow
    out = world.run("status").out
    assert "repaired by the reconcile after it" in out

    os.rename(world.other, world.other.with_name("other-away"))  # unplugged
    world.run("scan")
    report = json.loads(world.run("status", "--json").out)
    unavailable = [a for a in report["attention"] if a["kind"] == "unavailable"]
    assert [a["root"] for a in unavailable] == ["other"]
    assert "1 file(s) are marked missing" in unavailable[0]["message"]


def _root_ids(world: World) -> list[tuple[int, str]]:
    engine = make_engine(world.url)
    try:
        with engine.connect() as conn:
            return [(int(i), str(n)) for i, n in conn.execute(text("SELECT id, name FROM roots"))]
    finally:
        engine.dispose()


def test_status_names_config_roots_missing_from_the_catalog(world: World, tmp_path: Path) -> None:
    extra = tree(tmp_path / "extra", {"e.bin": b"e"})
    config = write_config(
        tmp_path / "c2.toml",
        roots={"lib": world.lib, "extra": extra},
        state_dir=world.state,
        host="h",
    )
    run = world.cli("status", "--json", "--config", config)
    kinds = {(a["kind"], a["root"]) for a in json.loads(run.out)["attention"]}
    assert kinds == {("not-in-catalog", "extra"), ("not-configured", "other")}


def test_status_with_the_daemon_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate(monkeypatch, tmp_path)
    lib = tree(tmp_path / "dlib", {"a.bin": b"a"})
    (tmp_path / "d").mkdir()
    daemon = Daemon(tmp_path / "d", {"lib": lib})
    cli = Cli(capsys)

    def status() -> dict[str, Any]:
        run = cli("status", "--json", "--config", daemon.config)
        assert run.code == 0, run.err
        report: dict[str, Any] = json.loads(run.out)
        return report

    try:
        daemon.start()

        def running() -> dict[str, Any] | None:
            report = status()
            daemons = report["daemons"]
            assert isinstance(daemons, list)
            return report if daemons and daemons[0]["status"] == "running" else None

        report = wait_until(running, 20, what="status: running (first heartbeat)")
        [d] = report["daemons"]
        assert d["pid"] == daemon.proc.pid and d["version"] == __version__  # type: ignore[union-attr]
        [root] = report["roots"]
        assert (root["name"], root["state"], root["last_event_at"]) == ("lib", "watching", None)
        (lib / "b.bin").write_bytes(b"b")

        # the start-up reconcile (after READY=1) may catalogue b.bin before the live batch
        # commits: wait for the batch's mark, not just for the row
        def touched() -> dict[str, Any] | None:
            [root] = status()["roots"]
            return root if root["last_event_at"] is not None else None

        root = wait_until(touched, 10, what="last_event_at set by the live batch")
        assert root["live"] == 2
        text_out = cli("status", "--config", daemon.config).out
        pid = daemon.proc.pid  # type: ignore[union-attr]
        assert f"daemon:   running (pid {pid}, version {__version__}), up " in text_out
        assert "ago" in next(r for r in text_out.splitlines() if r.startswith("lib "))
    finally:
        assert daemon.stop() == 0
        daemon.close()
    out = cli("status", "--config", daemon.config).out
    assert "daemon:   not running (stopped 20" in out and f"pid {pid}" in out


def test_status_as_a_user_who_may_only_read(capsys: pytest.CaptureFixture[str]) -> None:
    with nobody() as nb:
        w = build(Cli(capsys), nb.base)
        for p in (w.state, w.state / "catalog.db"):
            os.chown(p, 0, NOGROUP_GID)
        for p in w.state.iterdir():
            if p.name != "catalog.db":
                os.chown(p, 0, NOGROUP_GID)
        proc = nb.assetd("status", "--config", str(w.config))
        assert proc.returncode == 0, proc.stderr
        assert "daemon:   not running (no daemon has run on this host)" in proc.stdout
        assert any(r.startswith("lib ") and "not watched" in r for r in proc.stdout.splitlines())
        missing = nb.assetd("missing", "--config", str(w.config))
        assert missing.returncode == 0, missing.stderr
        assert missing.stdout.splitlines()[-1] == "1 missing path(s) in 1 root(s)"


# --- why ------------------------------------------------------------------------------------


def test_why_live_hashed_with_tags_and_duplicates(world: World) -> None:
    b = world.lib / "sub/b.bin"
    out = world.run("why", b).lines
    assert out[0] == str(b)
    assert out[1].startswith("  state:     live since ")
    assert "first catalogued by a walk of its root" in out[2]
    assert f"  root:      lib ({world.lib}) on host h: watching" in out
    asset = next(r for r in out if r.startswith("  asset:"))
    assert "blake3:" in asset
    assert next(r for r in out if r.startswith("  also at:")) == (
        f"  also at:   {world.lib / 'dup/b2.bin'}"
    )
    tags = [r for r in out if r.startswith("    tags:")]
    assert any("models (automatic)" in t and "favourite (manual)" in t for t in tags)
    assert "  on disk:   present, same size and mtime as catalogued" in out
    assert "  ignored:   no" in out

    report = json.loads(world.run("why", b, "--json").out)
    assert report["known"] is True and report["root"] == "lib" and report["ignored_by"] is None
    [row] = report["rows"]
    assert row["asset"]["hash"].startswith("blake3:") and row["state_reason"] == "seed"
    pairs = {(t["name"], t["origin"]) for i in row["infos"] for t in i["tags"]}
    assert {("models", "automatic"), ("favourite", "manual")} <= pairs


def test_why_missing_restored_and_unhashed(world: World) -> None:
    gone = world.run("why", world.lib / "gone/d.bin").lines
    assert gone[1].startswith("  state:     MISSING since ")
    assert "found gone by a reconcile" in gone[2] and "'reconcile'" in gone[2]
    assert "  on disk:   absent (No such file or directory)" in gone
    back = world.run("why", world.lib / "a.bin").lines
    assert back[1].startswith("  state:     live since ")
    assert "restored or changed, found by a reconcile" in back[2]
    new = world.run("why", world.lib / "new.bin").out
    assert "not hashed yet" in new


def test_why_ignored_unknown_and_directory_paths(world: World, tmp_path: Path) -> None:
    ignored = world.run("why", world.lib / "note.tmp").lines
    assert ignored[1] == "  not in the catalog"
    assert f"  root:      below root lib ({world.lib})" in ignored
    assert any(r.startswith("  ignored:   yes, by the rule '*.tmp'") for r in ignored)
    assert json.loads(world.run("why", world.lib / "note.tmp", "--json").out)["ignored_by"] == (
        "*.tmp"
    )

    outside = world.run("why", tmp_path / "elsewhere.bin").lines
    assert outside[1:] == [
        "  not in the catalog",
        "  on disk:   absent (No such file or directory)",
        "  root:      not under any root of this host",
    ]
    fresh = world.lib / "fresh.bin"
    fresh.write_bytes(b"f")
    pending = world.run("why", fresh).out
    assert "under root lib but not catalogued yet" in pending

    directory = world.run("why", world.lib / "sub").out
    assert "a directory: 1 live and 0 missing file(s) catalogued" in directory


# --- missing --------------------------------------------------------------------------------


def test_missing_grouped_by_root_and_directory_with_ages(world: World) -> None:
    (world.other / "x.bin").unlink()
    (world.lib / "sub/b.bin").unlink()
    world.run("scan")
    header, *lines = world.run("missing").lines
    assert header.split() == ["NAME", "MISSING", "FOR", "REASON", "SIZE"]
    assert lines[0] == f"lib ({world.lib}): 2 missing"
    assert lines[1] == f"  {world.lib}/gone/"
    assert lines[2].split()[0] == "d.bin" and lines[2].split()[-3:] == ["reconcile", "40", "B"]
    assert lines[3] == f"  {world.lib}/sub/"
    assert lines[5] == f"other ({world.other}): 1 missing"
    assert lines[-1] == "3 missing path(s) in 2 root(s)"

    only = world.run("missing", "--in-root", "other").lines[1:]
    assert only[0] == f"other ({world.other}): 1 missing" and len(only) == 4
    assert world.cli("missing", "--in-root", "nope", "--config", world.config).code == 2

    two_days = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    world.sql(
        lambda s: s.execute(
            update(cs)
            .where(cs.c.file_path == str(world.lib / "gone/d.bin"))
            .values(missing_since=two_days)
        )
    )
    recent = world.run("missing", "--since", "1d").lines
    assert recent[-1] == "2 missing path(s) in 2 root(s)"
    assert "d.bin" not in "\n".join(recent)
    assert world.run("missing", "--since", "3d").lines[-1] == "3 missing path(s) in 2 root(s)"
    assert "2 d" in world.run("missing", "--in-root", "lib").lines[3]  # its age

    report = json.loads(world.run("missing", "--json").out)
    assert report["count"] == 3
    lib = report["roots"][0]
    assert (lib["name"], lib["count"]) == ("lib", 2)
    d = lib["directories"][0]["files"][0]
    assert d["path"] == str(world.lib / "gone/d.bin") and d["age_s"] >= 2 * 86400 - 60
    assert d["hash"].startswith("blake3:") and d["state_reason"] == "reconcile"


def test_missing_when_nothing_is(world: World) -> None:
    assert world.run("missing", "--in-root", "other").lines == ["no missing paths"]
    assert world.cli("missing", "--since", "soon", "--config", world.config).code == 2


def test_root_state_writers_the_daemon_uses(world: World) -> None:
    """What the daemon writes for status: an overflow note on a watching root (kept by a
    later watching/polling record, replaced by degraded), never a change to an unavailable
    root (reconcile owns that), and last_event_at per batch."""
    ids = {name: i for i, name in _root_ids(world)}

    def state(name: str) -> tuple[str, str | None, int]:
        engine = make_engine(world.url)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT state, state_reason, epoch FROM roots WHERE id = :i"),
                    {"i": ids[name]},
                ).one()
        finally:
            engine.dispose()
        return str(row[0]), row[1], int(row[2])

    world.sql(lambda s: bump_epoch(s, ids["lib"], "overflow"))
    world.sql(lambda s: record_root_mode(s, ids["lib"], RootState.WATCHING, None))
    st, reason, epoch = state("lib")
    assert (st, epoch) == ("watching", 1) and (reason or "").startswith("overflow at 20")
    world.sql(lambda s: record_root_mode(s, ids["lib"], RootState.DEGRADED, "limit"))
    assert state("lib")[:2] == ("degraded", "limit")
    world.sql(lambda s: record_root_mode(s, ids["lib"], RootState.WATCHING, None))
    assert state("lib")[:2] == ("watching", None)

    os.rename(world.other, world.other.with_name("away"))
    world.run("scan")
    world.sql(lambda s: record_root_mode(s, ids["other"], RootState.WATCHING, None))
    world.sql(lambda s: bump_epoch(s, ids["other"], "overflow"))
    st, reason, _ = state("other")
    assert st == "unavailable" and reason == "missing"  # DESIGN §6's reason

    world.sql(lambda s: touch_roots(s, [ids["lib"]]))
    roots = {r["name"]: r for r in json.loads(world.run("status", "--json").out)["roots"]}
    assert roots["lib"]["last_event_at"] is not None
