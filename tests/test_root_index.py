"""RootIndex (live/rootindex.py): the memo per directory answers as the rule does, path by path."""

from __future__ import annotations

import itertools
import random

import pytest

from assetd.catalog.roots import RootSpec
from assetd.fsutil import IgnoreRules
from assetd.live import rootindex
from assetd.live.rootindex import RootIndex
from assetd.paths import is_strictly_under, relative_to

ROOTS = [
    RootSpec(1, "outer", "/lib", ignore=("*.tmp", "cache")),
    RootSpec(2, "inner", "/lib/a/inner", ignore=("keep*",)),
    RootSpec(3, "slash", "/srv/data/", ignore=()),
]


def by_the_rule(path: str) -> int | None:
    """The definition: the longest root ``path`` lies strictly below, unless its rules ignore
    a component of the path below that root."""
    for root in sorted(ROOTS, key=lambda r: len(r.path), reverse=True):
        if is_strictly_under(path, root.path):
            rel = relative_to(path, root.path) or ""
            return None if IgnoreRules(root.ignore).is_ignored(rel) else root.id
    return None


def test_memo_agrees_with_the_rule_on_every_path() -> None:
    names = ["lib", "a", "inner", "cache", "x.tmp", "keep1", "f", "srv", "data", "libx", "."]
    paths = {"/", "/lib", "/lib/", "/srv/data", "/srv/data/", "/lib/a/inner/"}
    for depth in range(1, 5):
        for combo in itertools.product(names, repeat=depth):
            paths.add("/" + "/".join(combo))
    index = RootIndex(ROOTS)
    for _ in range(2):  # the second pass is answered from the memo
        for path in sorted(paths):
            root = index.root_of(path)
            assert (root.id if root else None) == by_the_rule(path), path


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootindex, "MEMO_LIMIT", 100)
    index = RootIndex(ROOTS)
    rng = random.Random(7)
    for i in range(250):
        assert index.root_of(f"/lib/d{i}/f{rng.randrange(9)}") is not None
        assert len(index._dirs) <= 100
    assert index.root_of("/lib/d3/cache/f") is None  # still right after the memo started afresh
