"""Values the catalog stores and ``assetd why`` shows (a contract with other programs): why a
path is in its state, and how a file moved. Apart from the modules that write them so the
read-only commands can name them without importing SQLAlchemy."""

from __future__ import annotations


class Reason:
    """Values of ``asset_cache_states.state_reason`` (a contract: `assetd why` shows them)."""

    SEED = "seed"
    LIVE = "live"
    RECONCILE = "reconcile"
    PRUNE = "prune"
    ROOT_UNAVAILABLE = "root-unavailable"
    ROOT_COVERED = "root-covered"
    MOVED = "moved"
    REPLACED = "replaced"  # another file was moved onto this path (mv y x, an atomic save)


class How:
    """Values of ``asset_moves.how`` (a contract: ``why`` shows them)."""

    RENAME = "rename"  # a rename the kernel reported (inotify's paired MOVED_FROM/MOVED_TO)
    DIRECTORY = "directory"  # a directory renamed or moved: every file below it moved along
    BIRTH = "birth-time"  # a vanished path and a new one with the same inode and birth time
    HASH = "hash"  # a guessed move the hasher confirmed (the same content)
