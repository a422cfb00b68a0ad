"""Request and response bodies (pydantic), with ComfyUI's field names (``app/assets/api``) so a
client of one works on the other. assetd adds ``paths`` to an asset, and nothing else."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class PathOut(BaseModel):
    root: str
    path: str
    is_missing: bool


class AssetOut(BaseModel):
    id: str
    name: str
    hash: str | None = None
    size: int | None = None
    mime_type: str | None = None
    tags: list[str] = Field(default_factory=list)
    user_metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: dt.datetime
    updated_at: dt.datetime
    last_access_time: dt.datetime | None = None  # assetd does not track reads
    paths: list[PathOut] = Field(default_factory=list)


class AssetsList(BaseModel):
    assets: list[AssetOut]
    total: int
    has_more: bool
    next_cursor: str | None = None  # opaque; absent when there is no further page


class TagUsage(BaseModel):
    name: str
    count: int


class TagsList(BaseModel):
    tags: list[TagUsage]
    total: int
    has_more: bool


def _clean_tags(value: list[str]) -> list[str]:
    out = [t.strip().lower() for t in value]
    if any(not t or len(t) > 255 for t in out):
        raise ValueError("each tag must be 1 to 255 characters")
    return out


class TagsBody(BaseModel):
    tags: list[str] = Field(min_length=1)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return _clean_tags(value)


class TagsAdded(BaseModel):
    added: list[str]
    already_present: list[str]
    total_tags: list[str]


class TagsRemoved(BaseModel):
    removed: list[str]
    not_present: list[str]
    protected: list[str]  # automatic tags: the daemon's own, not removable here
    total_tags: list[str]


class AssetUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=512)
    user_metadata: dict[str, Any] | None = None


class SeedBody(BaseModel):
    roots: list[str] | None = None  # root names; default all


class SeedProgress(BaseModel):
    scanned: int
    total: int
    created: int
    skipped: int


class SeedStarted(BaseModel):
    status: Literal["started", "already_running"]


class SeedCompleted(BaseModel):
    status: Literal["completed"]
    progress: SeedProgress
    errors: list[str]


class SeedStatus(BaseModel):
    state: Literal["idle", "running", "cancelling"]
    progress: SeedProgress | None
    errors: list[str]


class SeedCancel(BaseModel):
    status: Literal["cancelling", "idle"]


class PruneResult(BaseModel):
    status: Literal["completed", "scan_running"]
    marked: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    reason: str | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    error: ErrorBody
