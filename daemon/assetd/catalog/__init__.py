"""The catalog: models, engine set-up, schema management and the operations of DESIGN §3.

Every operation that takes paths or prefixes also takes the roots it may touch (``roots=``).

The names below are imported from their modules on first use (PEP 562), so importing one
submodule (``assetd.catalog.engine`` for ``assetd status``) does not load them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assetd.catalog.cleanup import (
        cleanup_unreferenced_assets,
        get_unreferenced_unhashed_asset_ids,
    )
    from assetd.catalog.engine import make_engine, session_factory
    from assetd.catalog.listing import ListedFile, count_cache_states, list_cache_states
    from assetd.catalog.prune import (
        mark_assets_missing_outside_prefixes,
        mark_cache_states_missing_outside_prefixes,
        mark_missing_outside_prefixes_safely,
    )
    from assetd.catalog.roots import RootSpec, register_roots
    from assetd.catalog.seed import BulkInsertResult, SeedSpec, batch_insert_seed_assets
    from assetd.catalog.states import (
        Reason,
        bulk_update_is_missing,
        refresh_cache_states,
        restore_cache_states_by_paths,
    )

_MODULES = {
    "BulkInsertResult": "assetd.catalog.seed",
    "ListedFile": "assetd.catalog.listing",
    "Reason": "assetd.catalog.states",
    "RootSpec": "assetd.catalog.roots",
    "SeedSpec": "assetd.catalog.seed",
    "batch_insert_seed_assets": "assetd.catalog.seed",
    "bulk_update_is_missing": "assetd.catalog.states",
    "cleanup_unreferenced_assets": "assetd.catalog.cleanup",
    "count_cache_states": "assetd.catalog.listing",
    "get_unreferenced_unhashed_asset_ids": "assetd.catalog.cleanup",
    "list_cache_states": "assetd.catalog.listing",
    "make_engine": "assetd.catalog.engine",
    "mark_assets_missing_outside_prefixes": "assetd.catalog.prune",
    "mark_cache_states_missing_outside_prefixes": "assetd.catalog.prune",
    "mark_missing_outside_prefixes_safely": "assetd.catalog.prune",
    "refresh_cache_states": "assetd.catalog.states",
    "register_roots": "assetd.catalog.roots",
    "restore_cache_states_by_paths": "assetd.catalog.states",
    "session_factory": "assetd.catalog.engine",
}

__all__ = [
    "BulkInsertResult",
    "ListedFile",
    "Reason",
    "RootSpec",
    "SeedSpec",
    "batch_insert_seed_assets",
    "bulk_update_is_missing",
    "cleanup_unreferenced_assets",
    "count_cache_states",
    "get_unreferenced_unhashed_asset_ids",
    "list_cache_states",
    "make_engine",
    "mark_assets_missing_outside_prefixes",
    "mark_cache_states_missing_outside_prefixes",
    "mark_missing_outside_prefixes_safely",
    "refresh_cache_states",
    "register_roots",
    "restore_cache_states_by_paths",
    "session_factory",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
