"""assetd.paths: the one "is this path under that one" set, component-wise, bytes names too."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assetd.paths import deepest_parent, is_strictly_under, is_under, rebase, relative_to

BYTES_NAME = os.fsdecode(b"caf\xe9")  # not UTF-8: a lone surrogate in the OS form


@pytest.mark.parametrize(
    ("path", "parent", "under", "strictly", "relative"),
    [
        ("/a/b", "/a/b", True, False, ""),
        ("/a/b/c", "/a/b", True, True, "c"),
        ("/a/bc", "/a/b", False, False, None),
        ("/a/b/c", "/a/b/", True, True, "c"),
        ("/a", "/", True, True, "a"),
        ("/", "/", True, False, ""),
        (f"/r/{BYTES_NAME}/x", f"/r/{BYTES_NAME}", True, True, "x"),
        (f"/r/{BYTES_NAME}x", f"/r/{BYTES_NAME}", False, False, None),
    ],
)
def test_under_and_relative_agree(
    path: str, parent: str, under: bool, strictly: bool, relative: str | None
) -> None:
    assert is_under(path, parent) is under
    assert is_strictly_under(path, parent) is strictly
    assert relative_to(path, parent) == relative


def test_rebase_and_deepest_parent() -> None:
    assert rebase("/a/b/c/d", "/a/b", "/x") == "/x/c/d"
    assert rebase("/a/b", "/a/b", "/x/y") == "/x/y"
    with pytest.raises(ValueError, match="not under"):
        rebase("/a/bc", "/a/b", "/x")
    roots = [("outer", "/srv"), ("inner", "/srv/models"), ("other", "/srv/m")]
    assert deepest_parent(roots, "/srv/models/a.ckpt") == "inner"
    assert deepest_parent(roots, "/srv/mx") == "outer"
    assert deepest_parent(roots, "/srv") is None


@given(
    st.lists(st.sampled_from(["a", "b", "ab", BYTES_NAME]), min_size=1, max_size=4),
    st.lists(st.sampled_from(["a", "b", "ab", BYTES_NAME]), min_size=0, max_size=3),
)
def test_under_is_component_wise(parent_parts: list[str], extra: list[str]) -> None:
    parent = "/" + "/".join(parent_parts)
    path = parent + "".join("/" + p for p in extra)
    assert is_under(path, parent)
    assert relative_to(path, parent) == "/".join(extra)
    assert not is_under(parent + "x", parent)
