"""The API's one exception: a status, a stable code, a message naming what to fix."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}


def bad_field(field: str, message: str, code: str = "INVALID_QUERY") -> ApiError:
    """A 400 naming the field at fault."""
    return ApiError(400, code, f"{field}: {message}", {"field": field})


def not_found(info_id: str) -> ApiError:
    return ApiError(404, "ASSET_NOT_FOUND", f"asset {info_id} not found", {"id": info_id})
