"""The worker's stat phase (live/plan.py) on a real directory: one listing of a crowded
directory gives the plan that a look at each path gives."""

from __future__ import annotations

import os
from pathlib import Path

from assetd.catalog.roots import RootSpec
from assetd.links import LinkRules
from assetd.live import plan as plan_mod
from assetd.live.plan import LIST_MIN, Plan, plan_paths
from assetd.live.rootindex import RootIndex


class CountingLstat:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, path: str) -> os.stat_result:
        self.paths.append(path)
        return os.lstat(path)


def crowded(tmp_path: Path) -> tuple[RootSpec, list[str]]:
    """A root whose directory ``d`` holds files, a subdirectory, a symlink, a FIFO and an
    ignored name; the paths asked are those and as many deleted names."""
    root = tmp_path / "lib"
    d = root / "d"
    d.mkdir(parents=True)
    asked = []
    for i in range(LIST_MIN):
        kept = d / f"kept{i:03d}"
        kept.write_bytes(b"x" * i)
        gone = d / f"gone{i:03d}"
        gone.write_bytes(b"y")
        gone.unlink()
        asked += [str(kept), str(gone)]
    (d / "sub").mkdir()
    (d / "link").symlink_to(d / "kept001")
    os.mkfifo(d / "fifo")
    (d / "x.tmp").write_bytes(b"")
    asked += [str(d / n) for n in ("sub", "link", "fifo", "x.tmp")]
    spec = RootSpec(1, "lib", str(root), ignore=("*.tmp",))
    return spec, sorted(asked)


Shape = tuple[
    dict[int, list[tuple[str, int, int | None, bool | None]]], dict[int, list[str]], list[str], int
]


def shape(plan: Plan) -> Shape:
    present = {
        r: sorted((f.path, f.size, f.inode, f.is_symlink) for f in fs)
        for r, fs in plan.present.items()
    }
    gone = {r: sorted(ps) for r, ps in plan.gone.items()}
    return present, gone, sorted(d for _, d in plan.directories), plan.skipped


def test_one_listing_gives_the_plan_of_a_look_per_path(tmp_path: Path) -> None:
    spec, asked = crowded(tmp_path)
    index = RootIndex([spec])
    each = CountingLstat()
    per_path = plan_paths(asked, index, LinkRules([spec.path], lstat=each), listdir=None)
    listed = CountingLstat()
    by_listing = plan_paths(asked, index, LinkRules([spec.path], lstat=listed))
    assert shape(by_listing) == shape(per_path)
    present, gone, directories, skipped = shape(by_listing)
    assert len(present[1]) == LIST_MIN + 1  # the files and the link to one of them
    assert len(gone[1]) == LIST_MIN and directories == [f"{spec.path}/d/sub"] and skipped == 1
    # the deleted names were not looked at one by one; the ignored one not at all
    assert len(each.paths) == len(asked) - 1
    assert not any("/gone" in p for p in listed.paths)
    assert len(listed.paths) == len(asked) - 1 - LIST_MIN


def test_a_directory_gone_makes_its_paths_gone_without_a_look_each(tmp_path: Path) -> None:
    spec = RootSpec(1, "lib", str(tmp_path / "lib"))
    (tmp_path / "lib").mkdir()
    asked = sorted(f"{spec.path}/was/f{i:03d}" for i in range(LIST_MIN))
    asked.append(f"{spec.path}/file/under")  # a file where a directory was: ENOTDIR
    (tmp_path / "lib" / "file").write_bytes(b"")
    looks = CountingLstat()
    plan = plan_paths(asked, RootIndex([spec]), LinkRules([spec.path], lstat=looks))
    assert sorted(plan.gone[1]) == sorted(asked)
    assert looks.paths == [f"{spec.path}/file/under"]  # one path: below the listing threshold


def test_a_large_directory_is_not_listed_for_a_few_paths(tmp_path: Path) -> None:
    spec = RootSpec(1, "lib", str(tmp_path / "lib"))
    d = tmp_path / "lib" / "big"
    d.mkdir(parents=True)
    asked = sorted(f"{d}/f{i:03d}" for i in range(LIST_MIN))
    listings: list[str] = []

    def listdir(path: str) -> list[str]:
        listings.append(path)
        return os.listdir(path)

    def big(path: str) -> os.stat_result:  # the directory's entries take a lot of room
        st = os.lstat(path)
        fields = list(st[:10])
        fields[6] = max(LIST_MIN * plan_mod.LIST_BYTES_PER_PATH, plan_mod.LIST_BYTES_FLOOR) + 1
        return os.stat_result(fields)

    plan = plan_paths(asked, RootIndex([spec]), LinkRules([spec.path]), listdir=listdir, lstat=big)
    assert listings == [] and sorted(plan.gone[1]) == asked
    plan = plan_paths(asked, RootIndex([spec]), LinkRules([spec.path]), listdir=listdir)
    assert listings == [str(d)] and sorted(plan.gone[1]) == asked


def test_each_path_goes_to_the_root_root_of_gives_it(tmp_path: Path) -> None:
    """The root is found once per directory of the batch: each path still lands where
    ``RootIndex.root_of`` puts it. A nested root's own directory is an entry of the outer
    root, what lies below it the inner root's; ignored names and directories, and paths in
    no root, are not in the plan."""
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "inner"
    (inner / "deep").mkdir(parents=True)
    (outer / "cache").mkdir()
    asked = [
        outer / "a.bin",
        outer / "b.tmp",
        outer / "inner",
        outer / "cache" / "c.bin",
        inner / "d.bin",
        inner / "deep" / "e.bin",
        inner / "f.part",
        tmp_path / "elsewhere.bin",
    ]
    for p in asked:
        if not p.exists():
            p.write_bytes(b"x")
    roots = [
        RootSpec(1, "outer", str(outer), ignore=("*.tmp", "cache")),
        RootSpec(2, "inner", str(inner), ignore=("*.part",)),
    ]
    index = RootIndex(roots)
    paths = sorted(str(p) for p in asked)
    rules = LinkRules([r.path for r in roots])
    got = shape(plan_paths(paths, index, rules, listdir=None))
    present, gone, directories, skipped = got
    placed = {r: [p for p, *_ in fs] for r, fs in present.items()}
    assert placed == {
        1: [str(outer / "a.bin")],
        2: [str(inner / "d.bin"), str(inner / "deep" / "e.bin")],
    }
    assert directories == [str(inner)]  # the inner root's directory, an entry of the outer
    assert (gone, skipped) == ({}, 0)
    for path in paths:  # what root_of says, path by path
        root = index.root_of(path)
        expected = None if root is None else root.id
        where = [r for r, ps in placed.items() if path in ps]
        where = where or ([1] if path == str(inner) else [])
        assert where == ([] if expected is None else [expected]), path
