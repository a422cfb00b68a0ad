"""The package's layering (docs/architecture.md): no package imports one above it, and no module
grows past the size a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "daemon" / "assetd"
MAX_LINES = 450

# module prefix -> what it must never import (directly or through a function-level import)
FORBIDDEN = {
    "assetd.catalog": (
        "assetd.config",
        "assetd.catalog_access",
        "assetd.commands",
        "assetd.live",
        "assetd.service",
        "assetd.hashing",
        "assetd.reconcile",
        "assetd.cli",
    ),
    "assetd.live": ("assetd.commands", "assetd.cli", "assetd.service"),
    "assetd.hashing": ("assetd.commands", "assetd.cli", "assetd.service", "assetd.live"),
    "assetd.reconcile": ("assetd.commands", "assetd.cli", "assetd.service"),
    "assetd.walk": ("assetd.catalog", "assetd.config"),
    "assetd.fsutil": ("assetd.catalog", "assetd.config"),
    "assetd.statx": ("assetd.catalog", "assetd.config", "assetd.fsutil"),
    "assetd.births": ("assetd.commands", "assetd.cli", "assetd.service", "assetd.live"),
    "assetd.paths": ("assetd.catalog", "assetd.config", "assetd.fsutil"),
    "assetd.statefiles": ("assetd.catalog", "assetd.config", "assetd.live", "assetd.api"),
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        found.append((name, path))
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("assetd")}


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: str(v))
def test_no_import_from_a_layer_above(module: str, path: Path) -> None:
    for prefix, banned in FORBIDDEN.items():
        if module == prefix or module.startswith(prefix + "."):
            bad = sorted(
                n for n in _imports(path) for b in banned if n == b or n.startswith(b + ".")
            )
            assert not bad, f"{module} imports {bad}, a layer above it"


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: str(v))
def test_modules_stay_small(module: str, path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (bound {MAX_LINES}): split it"
