"""The exception hierarchy; each class carries the exit code of DESIGN §6.

Library code raises these; ``cli.main`` turns them into one line on stderr and the exit code.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CORRUPT = 65  # EX_DATAERR: the catalog file is damaged
EXIT_DB_UNAVAILABLE = 69
EXIT_TEMPORARY = 75
EXIT_CONFIG = 78


class AssetdError(Exception):
    """Base of every error assetd reports to a person; ``str(err)`` is one line."""

    exit_code: int = EXIT_FAILED


class UsageError(AssetdError):
    """The command line is wrong."""

    exit_code = EXIT_USAGE


class ConfigError(AssetdError):
    """The configuration is invalid; the message names the key."""

    exit_code = EXIT_CONFIG

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"config: {key}: {message}" if key else f"config: {message}")


class DatabaseUnavailable(AssetdError):
    """The catalog database cannot be reached, opened or written."""

    exit_code = EXIT_DB_UNAVAILABLE


class CatalogCorrupt(AssetdError):
    """The catalog's file is damaged (not a database, malformed pages): restarting cannot fix
    it; the message says how to check it and restore a backup."""

    exit_code = EXIT_CORRUPT


class DatabaseLocked(AssetdError):
    """The catalog is locked by another writer; trying again later may work."""

    exit_code = EXIT_TEMPORARY


class HostLocked(AssetdError):
    """Another daemon already runs for this host."""

    exit_code = EXIT_TEMPORARY


class SchemaMismatch(AssetdError):
    """The catalog's schema is not the one this assetd uses (older, or newer)."""

    exit_code = EXIT_FAILED


class CatalogMissing(AssetdError):
    """A read-only command found no catalog yet."""

    exit_code = EXIT_FAILED


class WatchError(AssetdError):
    """A root could not be watched; the message says why and what to do."""

    def __init__(self, root_name: str, message: str) -> None:
        self.root_name = root_name
        super().__init__(f"root {root_name!r}: {message}")
