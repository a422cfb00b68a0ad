"""A model-based test of the real daemon (issue 12, DESIGN §8): hypothesis drives ``assetd run``
(a process, run as ``nobody``) on three roots with random sequences of file operations, root
losses, permission changes, reloads, crashes and restarts, and manual tags put on by plain SQL.
After each sequence and a barrier, the catalog must equal the disk (tests/stateful_world.py
reads it; :meth:`DaemonMachine.problems` is the invariant).

The model is small: the disk is walked, not modelled. What is modelled is what the disk cannot
say: where each manual tag must be (it follows moves the daemon saw, stays on the path of a file
edited, replaced or deleted; a move the daemon may not have seen as one, e.g. just before a
SIGKILL, makes it *floating*: it must then only never be lost; a deleted file's tag may follow
a guessed move the hasher confirmed, :func:`guessed`), which ignored paths may have a
row (those that existed while not ignored: a reload never touches rows of newly ignored paths),
and which paths a row may stand at at all.

``ASSETD_STATEFUL_EXAMPLES=N`` runs N examples (random, not derandomized) for long local runs;
CI runs 20 derandomized examples of up to 30 steps. Every example has at least one SIGKILL and
one root removal (forced at its end when the random steps had none). The per-rule costs are
printed (``-s``) to keep the budget honest.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from helpers import Timeout
from stateful_world import Row, World, blake3_of, poll, walk_dirs, walk_files
from unprivileged import Nobody, nobody

LONG = int(os.environ.get("ASSETD_STATEFUL_EXAMPLES") or 0)
PROGRESS = os.environ.get("ASSETD_STATEFUL_LOG", "")  # a line per example, for long runs
NO_SHRINK = bool(os.environ.get("ASSETD_STATEFUL_NO_SHRINK"))  # report the first failure as is
EXAMPLES = LONG or 20
STEPS = 30
COSTS: dict[str, list[float]] = defaultdict(list)
CHECKED: dict[str, int] = defaultdict(int)  # what the final checks looked at, for the report

F = TypeVar("F", bound=Callable[..., None])

CONTENTS = st.one_of(st.sampled_from([b"", b"a", b"same"]), st.binary(max_size=24))
EXTS = st.sampled_from(["", "", ".bin", ".skip", ".tmp"])


def step(fn: F) -> F:
    """A rule: timed (:data:`COSTS`), and marked failed until it returns (no final check is
    made over a failed step: its own error is the report)."""

    @functools.wraps(fn)
    def wrapper(self: DaemonMachine, *args: Any, **kwargs: Any) -> None:
        self.failed = True
        self.steps += 1
        started = time.monotonic()
        try:
            fn(self, *args, **kwargs)
        except BaseException as err:
            progress(f"example {self.w.base.name}: step {fn.__name__} failed: {err!r:.2000}")
            raise
        COSTS[fn.__name__].append(time.monotonic() - started)
        self.failed = False

    return wrapper  # type: ignore[return-value]


def progress(line: str) -> None:
    if PROGRESS:
        with open(PROGRESS, "a") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {line}\n")


def under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def moved(path: str, src: str, dst: str) -> str:
    return dst + path[len(src) :] if under(path, src) else path


GUESSES = ("hash", "birth-time")  # asset_moves.how of a pairing the daemon made a move


def guessed(where: str, reach: set[str], moves: list[tuple[str, str, str]]) -> bool:
    """Whether the file at ``where`` went, by a guessed move the daemon confirmed and any
    moves after it, to a path in ``reach``. content-rules.md rule 8: a path that vanished and
    a new one on its inode with the same size and mtime (ext4 reuses a freed inode at once)
    pair as a candidate, and when the hasher finds the same content, the metadata follows and
    the old row goes. The model does not know contents: the catalog's move history says which
    guesses were confirmed, and the hash check says the new file's content is the asset's."""
    seen = {to for src, to, how in moves if src == where and how in GUESSES}
    todo = list(seen)
    while todo:
        at = todo.pop()
        for src, to, _how in moves:
            if src == at and to not in seen:
                seen.add(to)
                todo.append(to)
    return bool(seen & reach)


class DaemonMachine(RuleBasedStateMachine):
    nb: Nobody
    examples = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.failed = True
        self.steps = 0
        self.w = World(self.nb, self.nb.base / f"ex{next(self.examples)}", nroots=3)
        self.names = itertools.count()
        self.skip_ignored = True
        self.away: dict[str, str] = {}  # root name -> "moved" | "deleted"
        self.rewatch: set[str] = set()  # roots put back, not yet seen watched again (a barrier)
        self.unreadable: set[str] = set()  # directories at mode 0
        self.tags: dict[str, str | None] = {}  # tag -> the path of its row (None: floating)
        self.unsynced: set[str] = set()  # tags moved since the last barrier
        self.known: set[str] = set()  # paths a row may stand at
        self.exposed: set[str] = set()  # ignored paths that existed while not ignored
        self.killed = self.termed = self.removed = False
        try:
            self.w.start()
        except BaseException:
            self.w.daemon.close()
            raise
        self.failed = False

    # --- what the rules pick from -----------------------------------------------------------

    def present(self) -> list[str]:
        return [n for n in self.w.roots if n not in self.away]

    def files(self) -> list[Path]:
        out: list[Path] = []
        for name in self.present():
            out += [p for p, _ in walk_files(self.w.roots[name]) if "zz-sentinel" not in p.name]
        return sorted(out)

    def dirs(self, roots: list[str] | None = None) -> list[Path]:
        out: list[Path] = []
        for name in roots if roots is not None else self.present():
            out += walk_dirs(self.w.roots[name])
        return sorted(out)

    def ignored(self, path: str | Path) -> bool:
        name = os.path.basename(str(path))
        return name.endswith(".tmp") or (self.skip_ignored and name.endswith(".skip"))

    def blocked(self, path: str | Path) -> bool:
        """Whether the daemon cannot stat ``path`` (a directory above it is at mode 0), or
        may not watch it yet (its root was put back, and the daemon re-watches a root once it
        notices: a move there meanwhile is found by the reconcile, as a guess)."""
        return any(under(str(path), d) and str(path) != d for d in self.unreadable) or any(
            under(str(path), str(self.w.roots[n])) for n in self.rewatch
        )

    def fresh(self, parent: Path, ext: str = "", prefix: str = "f") -> Path:
        return parent / f"{prefix}{next(self.names)}{ext}"

    # --- the model --------------------------------------------------------------------------

    def appear(self, path: Path) -> None:
        self.known.add(str(path))
        if str(path).endswith(".skip") and not self.skip_ignored:
            self.exposed.add(str(path))

    def float_tags(self, which: set[str] | None = None) -> None:
        for tag in self.unsynced if which is None else which:
            self.tags[tag] = None
        if which is None:
            self.unsynced.clear()

    def tags_under(self, top: str) -> set[str]:
        return {t for t, p in self.tags.items() if p is not None and under(p, top)}

    def move_model(self, src: str, dst: str, *, sure: bool) -> None:
        """Rows under ``src`` now stand under ``dst`` (a file or a whole directory)."""
        for sets in (self.known, self.exposed):
            sets |= {moved(p, src, dst) for p in sets if under(p, src)}
        self.unreadable = {moved(p, src, dst) for p in self.unreadable}
        tagged = self.tags_under(src)
        if not sure:
            self.float_tags(tagged)
            return
        for tag in tagged:
            self.tags[tag] = moved(str(self.tags[tag]), src, dst)
        self.unsynced |= tagged

    def settle(self) -> None:
        """A barrier in every root the daemon can read: tags moved before it are where the
        model says."""
        roots = [n for n in self.present() if str(self.w.roots[n]) not in self.unreadable]
        # Twice: a reconcile (SIGUSR1, a root put back, a start) may catalogue a sentinel before
        # the live batches that hold the steps made before it (run 10's example 454); a pass
        # that caught the first sentinels listed each root before the second ones were made.
        self.w.barrier(roots)
        self.w.barrier(roots)
        self.rewatch -= set(roots)
        self.known |= {str(p) for p, _ in self.sentinel_files(roots)}
        if len(roots) == len(self.w.roots):
            self.unsynced.clear()

    def sentinel_files(self, roots: list[str]) -> list[tuple[Path, os.stat_result]]:
        return [
            (p, s)
            for n in roots
            for p, s in walk_files(self.w.roots[n])
            if p.name.startswith("zz-sentinel")
        ]

    # --- file operations --------------------------------------------------------------------

    @initialize(
        tree=st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 2), EXTS, CONTENTS), min_size=3, max_size=12
        ),
        tagged=st.lists(st.integers(0, 11), min_size=1, max_size=3),
    )
    @step
    def populate(self, tree: list[tuple[int, int, str, bytes]], tagged: list[int]) -> None:
        """Every sequence starts from a small tree with a few manual tags."""
        for root, depth, ext, content in tree:
            parent = self.w.roots[f"r{root}"]
            for level in range(depth):
                parent = parent / f"d{level}"
            parent.mkdir(parents=True, exist_ok=True)
            path = self.fresh(parent, ext)
            path.write_bytes(content)
            self.appear(path)
        files = [f for f in self.files() if not self.ignored(f)]
        self.settle()
        for i in sorted(set(tagged)):
            if files:
                self.put_tag(files[i % len(files)])

    @precondition(lambda self: self.present())
    @rule(data=st.data(), ext=EXTS, content=CONTENTS, reuse=st.booleans())
    @step
    def create(self, data: st.DataObject, ext: str, content: bytes, reuse: bool) -> None:
        gone = sorted(
            p
            for p in self.known
            if not os.path.lexists(p)
            and os.path.isdir(os.path.dirname(p))
            and any(under(p, str(self.w.roots[n])) for n in self.present())
            and "zz-sentinel" not in p
        )
        if reuse and gone:
            path = Path(data.draw(st.sampled_from(gone), label="recreate"))
        else:
            path = self.fresh(data.draw(st.sampled_from(self.dirs()), label="in"), ext)
        path.write_bytes(content)
        self.appear(path)

    @precondition(lambda self: self.files())
    @rule(data=st.data(), content=CONTENTS, same_size=st.booleans())
    @step
    def overwrite(self, data: st.DataObject, content: bytes, same_size: bool) -> None:
        path = data.draw(st.sampled_from(self.files()), label="file")
        before = path.stat()
        old = path.read_bytes()
        if same_size:
            new = bytes((b + 1) % 256 for b in old)
        else:
            new = content if len(content) != len(old) else content + b"+"
        path.write_bytes(new)
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
            # the catalog's contract is size and mtime_ns (DESIGN §2): make the edit visible
            os.utime(path, ns=(after.st_atime_ns, before.st_mtime_ns + 1_000_000))

    @precondition(lambda self: self.files())
    @rule(data=st.data())
    @step
    def delete(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(self.files()), label="file").unlink()

    @precondition(lambda self: self.files())
    @rule(data=st.data(), ext=EXTS)
    @step
    def rename_file(self, data: st.DataObject, ext: str) -> None:
        src = data.draw(st.sampled_from(self.files()), label="file")
        dst = self.fresh(data.draw(st.sampled_from(self.dirs()), label="to"), ext)
        os.rename(src, dst)
        self.appear(dst)
        # across roots too: the two roots' halves are paired into one move (live/crossroot.py)
        sure = not any(self.ignored(p) or self.blocked(p) for p in (src, dst))
        self.move_model(str(src), str(dst), sure=sure)

    @precondition(lambda self: len(self.files()) >= 2)
    @rule(data=st.data())
    @step
    def mv_onto(self, data: st.DataObject) -> None:
        """``mv y x``: an edit of x, which keeps its tags and gains y's."""
        files = self.files()
        x = data.draw(st.sampled_from(files), label="x")
        y = data.draw(st.sampled_from([f for f in files if f != x]), label="y")
        os.rename(y, x)
        sure = not any(self.ignored(p) or self.blocked(p) for p in (x, y))
        if not sure:
            self.float_tags(self.tags_under(str(x)))
        self.move_model(str(y), str(x), sure=sure)

    @precondition(lambda self: self.files())
    @rule(data=st.data(), content=CONTENTS, ignored_temp=st.booleans())
    @step
    def atomic_save(self, data: st.DataObject, content: bytes, ignored_temp: bool) -> None:
        """An editor's save: a temp file (ignored or not) renamed over the target."""
        path = data.draw(st.sampled_from(self.files()), label="file")
        temp = path.parent / f".{path.name}.{next(self.names)}.{'tmp' if ignored_temp else 'new'}"
        temp.write_bytes(content)
        self.appear(temp)
        os.rename(temp, path)
        if self.ignored(path) or self.blocked(path):
            self.float_tags(self.tags_under(str(path)))

    @precondition(lambda self: self.present())
    @rule(data=st.data())
    @step
    def mkdir(self, data: st.DataObject) -> None:
        self.fresh(data.draw(st.sampled_from(self.dirs()), label="in"), prefix="d").mkdir()

    @precondition(lambda self: any(d not in self.roots_paths() for d in self.dirs()))
    @rule(data=st.data(), across=st.booleans())
    @step
    def rename_dir(self, data: st.DataObject, across: bool) -> None:
        """A directory renamed in its root, or moved to another root."""
        roots = self.roots_paths()
        src = data.draw(st.sampled_from([d for d in self.dirs() if d not in roots]), label="dir")
        home = next(n for n in self.present() if under(str(src), str(self.w.roots[n])))
        others = [n for n in self.present() if n != home] if across else [home]
        targets = [d for d in self.dirs(others) if not under(str(d), str(src))]
        if not targets:
            return
        dst = self.fresh(data.draw(st.sampled_from(targets), label="to"), prefix="d")
        os.rename(src, dst)
        sure = not (
            self.blocked(src)
            or self.blocked(dst)
            or any(under(u, str(src)) for u in self.unreadable)
        )
        self.move_model(str(src), str(dst), sure=sure)

    def roots_paths(self) -> set[Path]:
        return set(self.w.roots.values())

    # --- roots and permissions --------------------------------------------------------------

    @rule(data=st.data(), delete=st.booleans())
    @step
    def remove_root(self, data: st.DataObject, delete: bool) -> None:
        """A root moved away (an unplugged disk), or deleted with a backup kept to restore."""
        present = self.present()
        if not present:
            return
        name = data.draw(st.sampled_from(present), label="root")
        root = self.w.roots[name]
        self.float_tags()
        if delete:
            shutil.copytree(root, self.w.base / f"backup-{name}", symlinks=True)
            shutil.rmtree(root)
        else:
            os.rename(root, self.w.base / f"away-{name}")
        self.away[name] = "deleted" if delete else "moved"
        self.removed = True

    @precondition(lambda self: self.away)
    @rule(data=st.data())
    @step
    def restore_root(self, data: st.DataObject) -> None:
        self.restore(data.draw(st.sampled_from(sorted(self.away)), label="root"))

    def restore(self, name: str) -> None:
        root = self.w.roots[name]
        self.rewatch.add(name)
        if self.away.pop(name) == "deleted":
            backup = self.w.base / f"backup-{name}"
            shutil.copytree(backup, root, symlinks=True)  # same names, sizes and mtimes
            shutil.rmtree(backup)
        else:
            os.rename(self.w.base / f"away-{name}", root)
        if not self.skip_ignored:  # the reconcile of a root back finds them not ignored
            self.exposed |= {str(p) for p, _ in walk_files(root) if p.name.endswith(".skip")}

    @rule(data=st.data())
    @step
    def make_unreadable(self, data: st.DataObject) -> None:
        choices = [d for d in self.dirs() if str(d) not in self.unreadable]
        if choices:
            d = data.draw(st.sampled_from(choices), label="dir")
            self.float_tags()  # what the daemon had not yet applied there, it cannot stat now
            os.chmod(d, 0)
            self.unreadable.add(str(d))

    @precondition(lambda self: self.unreadable)
    @rule(data=st.data())
    @step
    def make_readable(self, data: st.DataObject) -> None:
        choices = sorted(d for d in self.unreadable if os.path.isdir(d))
        if choices:
            d = data.draw(st.sampled_from(choices), label="dir")
            os.chmod(d, 0o755)
            self.unreadable.discard(d)

    # --- the daemon -------------------------------------------------------------------------

    @rule(change=st.booleans())
    @step
    def sighup(self, change: bool) -> None:
        """A reload; with ``change``, ``*.skip`` goes in or out of the ignore list."""
        if change:
            self.float_tags()  # the roots are re-watched: a move in between is a guess
            self.w.write_config(skip_ignored=not self.skip_ignored)
        if not self.w.reload():  # kept the running configuration (logged): so does the model
            self.w.write_config(skip_ignored=self.skip_ignored)
            return
        if change:
            self.skip_ignored = not self.skip_ignored
            if not self.skip_ignored:
                self.exposed |= {str(p) for p in self.files() if p.name.endswith(".skip")}

    # A start costs ~1 s of imports (more on a loaded machine): one SIGKILL and one SIGTERM at
    # most per sequence keep the budget; the SIGKILL comes at a random point, or at the end.
    @precondition(lambda self: not self.killed)
    @rule()
    @step
    def sigkill_restart(self) -> None:
        self.float_tags()
        self.w.kill()
        self.killed = True
        self.w.start()

    @precondition(lambda self: not self.termed)
    @rule()
    @step
    def sigterm_restart(self) -> None:
        self.float_tags()
        self.termed = True
        self.w.term()
        self.w.start()

    @rule()
    @step
    def sigusr1(self) -> None:
        self.w.daemon.send(10)  # SIGUSR1: a reconcile, at once

    @precondition(lambda self: self.files())
    @rule(data=st.data())
    @step
    def tag(self, data: st.DataObject) -> None:
        """A manual tag, put on by plain SQL as another program would, on a catalogued file."""
        choices = [
            f
            for f in self.files()
            if not self.ignored(f) and not self.blocked(f) and str(f.parent) not in self.unreadable
        ]
        if not choices:
            return
        path = data.draw(st.sampled_from(choices), label="file")
        self.settle()
        self.put_tag(path)

    def put_tag(self, path: Path) -> None:
        try:
            poll(lambda: self.w.live([path]), 2, f"a live row for {path}")
        except Timeout:
            return  # the final check says why
        name = f"t{next(self.names)}"
        if self.w.add_manual_tag(path, name):
            self.tags[name] = str(path)

    # --- the end of a sequence: forced steps, barrier, invariant ----------------------------

    def teardown(self) -> None:
        try:
            if not self.failed:
                self.finish()
        finally:
            self.w.daemon.close()
            for d in self.unreadable:
                if os.path.isdir(d):
                    os.chmod(d, 0o755)
            shutil.rmtree(self.w.base, ignore_errors=True)

    def finish(self) -> None:
        started = time.monotonic()
        if not self.removed:  # forced: SIGKILL, a root moved away meanwhile, restart
            self.float_tags()  # (with the daemon down, the hasher never meets it half gone and
            self.w.kill()  # waits out its retry backoff: that was most of the CI time)
            self.killed = True
            name = sorted(self.present() or self.w.roots)[0]
            if name in self.away:
                self.restore(name)
            os.rename(self.w.roots[name], self.w.base / f"away-{name}")
            self.away[name] = "moved"
            self.w.start()
        if not self.killed:
            self.sigkill_restart()
        for name in sorted(self.away):
            self.restore(name)
        for d in sorted(self.unreadable, reverse=True):
            os.chmod(d, 0o755)
        self.unreadable.clear()
        try:
            phase = time.monotonic()
            self.settle()
            COSTS["(final: barrier)"].append(time.monotonic() - phase)
            phase = time.monotonic()
            poll(lambda: not self.problems(hashes=False), 15, "the catalog to equal the disk")
            COSTS["(final: rows)"].append(time.monotonic() - phase)
            phase = time.monotonic()
            # the hasher retries a file it could not read (its root away) after 5 s, doubling
            poll(lambda: not self.problems(hashes=True), 45, "hashing to settle")
            COSTS["(final: hashes)"].append(time.monotonic() - phase)
        except Timeout as err:
            why = "\n".join(self.problems(hashes=True))
            progress(f"example {self.w.base.name}: final check failed: {err}:\n{why}")
            if PROGRESS:  # keep the daemon's log and catalog beside the progress log
                keep = Path(f"{PROGRESS}.{self.w.base.name}")
                shutil.copytree(self.w.daemon.state, keep / "state", dirs_exist_ok=True)
                shutil.copy(self.w.daemon.log_path, keep / "daemon.log")
            raise AssertionError(f"{err}:\n{why}") from None
        assert self.w.alive(), self.w.daemon.log_text()[-3000:]
        CHECKED["rows"] += len(self.w.rows())
        CHECKED["files"] += sum(1 for top in self.w.roots.values() for _ in walk_files(top))
        CHECKED["tags followed"] += sum(1 for p in self.tags.values() if p is not None)
        CHECKED["tags floating"] += sum(1 for p in self.tags.values() if p is None)
        COSTS["(final check)"].append(time.monotonic() - started)
        progress(
            f"example {self.w.base.name}: {self.steps} steps, {len(self.w.rows())} rows, "
            f"{len(self.tags)} tags ({sum(1 for p in self.tags.values() if p is None)} floating)"
        )

    def problems(self, *, hashes: bool) -> list[str]:
        """Everything in which the catalog differs from the disk and the model (empty: none)."""
        roots = {n: str(p) for n, p in self.w.roots.items()}
        disk = {str(p): s for top in self.w.roots.values() for p, s in walk_files(top)}
        conn = self.w.connect()
        try:
            rows = self.w.rows(conn)
            tags = self.w.manual_tags(conn) if hashes else {}
            moves = self.w.file_moves(conn) if hashes else []
            integrity = conn.execute("PRAGMA integrity_check").fetchall() if hashes else []
            fks = conn.execute("PRAGMA foreign_key_check").fetchall() if hashes else []
            pathless = conn.execute(
                "SELECT a.id FROM assets a WHERE NOT EXISTS "
                "(SELECT 1 FROM asset_cache_states c WHERE c.asset_id = a.id)"
            ).fetchall()
        finally:
            conn.close()
        out: list[str] = []
        by_path: dict[str, Row] = {}
        for r in rows:
            if r.path in by_path:
                out.append(f"two rows for {r.path}")
            by_path[r.path] = r
            if not under(r.path, roots[r.root]):
                out.append(f"row of root {r.root} outside it: {r.path}")
            if self.ignored(r.path):
                if r.path not in self.exposed:
                    out.append(f"a row for an ignored path: {r.path}")
                continue
            if r.path not in self.known:
                out.append(f"a row where no file ever was: {r.path}")
            if r.path not in disk and not r.missing:
                out.append(f"vanished but live: {r.path}")
        for path, s in disk.items():
            if self.ignored(path):
                continue
            row = by_path.get(path)
            if row is None or row.missing:
                out.append(f"no live row: {path} ({'none' if row is None else 'missing'})")
            elif (row.size, row.mtime_ns) != (s.st_size, s.st_mtime_ns):
                out.append(f"stale figures: {path} {(row.size, row.mtime_ns)} vs disk")
            elif hashes and (row.needs_verify or row.hash != blake3_of(Path(path))):
                out.append(f"hash not settled or wrong: {path} {row.hash} {row.needs_verify=}")
        out += [f"an asset without a path: {a}" for (a,) in pathless]
        if not hashes:
            return out
        for tag, where in self.tags.items():
            reach = tags.get(tag)
            if reach is None:
                out.append(f"manual tag lost: {tag} (was on {where})")
            elif not reach:
                out.append(f"manual tag {tag} on an asset no row points at")
            elif where is not None and where not in reach and not guessed(where, reach, moves):
                out.append(f"manual tag {tag} not on {where} but on {sorted(reach)}")
        if integrity != [("ok",)]:
            out.append(f"integrity_check: {integrity}")
        out += [f"foreign_key_check: {f}" for f in fks]
        return out


@pytest.mark.timeout(300 if not LONG else LONG * 60)
def test_the_daemon_converges_whatever_happens() -> None:
    with nobody() as nb:
        DaemonMachine.nb = nb
        started = time.monotonic()
        COSTS.clear()
        CHECKED.clear()
        try:
            run_state_machine_as_test(  # type: ignore[no-untyped-call]
                DaemonMachine,
                settings=settings(
                    max_examples=EXAMPLES,
                    stateful_step_count=STEPS,
                    deadline=None,
                    derandomize=not LONG,
                    database=None if not LONG else settings().database,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.generate] if NO_SHRINK else list(Phase),
                ),
            )
        finally:
            steps = sum(len(v) for k, v in COSTS.items() if not k.startswith("("))
            print(f"\nstateful: {time.monotonic() - started:.1f} s, {steps} steps, {dict(CHECKED)}")
            for name, costs in sorted(COSTS.items(), key=lambda kv: -sum(kv[1])):
                print(
                    f"  {name:20} n={len(costs):4} total={sum(costs):6.1f} s "
                    f"mean={sum(costs) / len(costs) * 1000:7.1f} ms"
                )
