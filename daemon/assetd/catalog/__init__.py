"""The catalog: models, engine set-up, schema management and the operations of DESIGN §3.

Every operation that takes paths or prefixes also takes the roots it may touch (``roots=``).
"""

from assetd.catalog.cleanup import cleanup_unreferenced_assets, get_unreferenced_unhashed_asset_ids
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
