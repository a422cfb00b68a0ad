"""``/api/assets``, ``/api/assets/{id}``, ``/api/assets/hash/{hash}``, ``/api/tags`` and an
asset's tags. Plain (sync) handlers: FastAPI runs them on its thread pool."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from assetd.api.context import ApiContext
from assetd.api.errors import ApiError, bad_field, not_found
from assetd.api.models import (
    AssetOut,
    AssetsList,
    AssetUpdate,
    PathOut,
    TagsAdded,
    TagsBody,
    TagsList,
    TagsRemoved,
    TagUsage,
)
from assetd.catalog.api_assets import (
    AssetEntry,
    AssetFilter,
    Cursor,
    count_assets,
    get_asset,
    hash_exists,
    list_assets,
)
from assetd.catalog.api_tags import (
    InfoNotFound,
    NameTaken,
    add_manual_tags,
    list_tags,
    remove_tags,
    update_info,
)

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid parameter (the message names it)"},
    401: {"description": "missing or wrong bearer token"},
    503: {"description": "database unavailable"},
}
_HASH = re.compile(r"^blake3:[0-9a-f]{64}$")


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _split(values: list[str]) -> tuple[str, ...]:
    """Repeatable or comma-separated, lower-cased, in order, without repeats."""
    out = [t.strip().lower() for v in values for t in v.split(",")]
    return tuple(dict.fromkeys(t for t in out if t))


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor.sort, cursor.order, cursor.value, cursor.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, sort: str, order: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        c_sort, c_order, value, info_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad_field("after", "not a cursor this server gave out", "INVALID_CURSOR") from None
    if (c_sort, c_order) != (sort, order) or not isinstance(info_id, int):
        raise bad_field(
            "after", f"cursor is for sort={c_sort}&order={c_order}; pass the same", "INVALID_CURSOR"
        )
    return Cursor(sort, order, value, info_id)


def asset_out(e: AssetEntry) -> AssetOut:
    return AssetOut(
        id=str(e.id),
        name=e.name,
        hash=e.hash,
        size=e.size,
        mime_type=e.mime_type,
        tags=e.tags,
        user_metadata=e.user_metadata,
        created_at=e.created_at,
        updated_at=e.updated_at,
        paths=[PathOut(root=p.root, path=p.path, is_missing=p.is_missing) for p in e.paths],
    )


@router.get("/api/assets", response_model=AssetsList, responses=ERRORS)
def list_assets_route(
    request: Request,
    include_tags: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies it
    exclude_tags: Annotated[list[str], Query()] = [],  # noqa: B006
    name_contains: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    after: str | None = None,
    sort: Literal["name", "created_at", "updated_at", "size"] = "created_at",
    order: Literal["asc", "desc"] = "desc",
    in_root: str | None = None,
    path_prefix: str | None = None,
    include_missing: bool = False,
) -> AssetsList:
    ctx = _ctx(request)
    if path_prefix is not None and not path_prefix.startswith("/"):
        raise bad_field("path_prefix", "must be an absolute path")
    cursor = decode_cursor(after, sort, order) if after else None
    flt = AssetFilter(
        include_tags=_split(include_tags),
        exclude_tags=_split(exclude_tags),
        name_contains=name_contains or None,
        in_root=in_root,
        path_prefix=path_prefix,
        include_missing=include_missing,
    )
    with ctx.read_sessions() as s:
        entries, more = list_assets(
            s, flt, sort=sort, order=order, limit=limit, offset=offset, after=cursor
        )
        total = ctx.totals.get(flt)
        if total is None:
            total = count_assets(s, flt)
            ctx.totals.put(flt, total)
    next_cursor = None
    if more and entries:
        last = entries[-1]
        next_cursor = encode_cursor(Cursor(sort, order, last.sort_value(sort), last.id))
    return AssetsList(
        assets=[asset_out(e) for e in entries],
        total=total,
        has_more=more,
        next_cursor=next_cursor,
    )


def _info_id(text: str) -> int:
    if not text.isdigit() or len(text) > 19:
        raise not_found(text)
    return int(text)


@router.get("/api/assets/{asset_id}", response_model=AssetOut, responses=ERRORS)
def get_asset_route(request: Request, asset_id: str) -> AssetOut:
    with _ctx(request).read_sessions() as s:
        entry = get_asset(s, _info_id(asset_id))
    if entry is None:
        raise not_found(asset_id)
    return asset_out(entry)


@router.put("/api/assets/{asset_id}", response_model=AssetOut, responses=ERRORS)
def put_asset_route(request: Request, asset_id: str, body: AssetUpdate) -> AssetOut:
    info_id = _info_id(asset_id)
    if body.name is None and body.user_metadata is None:
        raise bad_field("body", "give name and/or user_metadata", "INVALID_BODY")
    ctx = _ctx(request)
    try:
        with ctx.write_sessions() as s, s.begin():
            update_info(s, info_id, name=body.name, user_metadata=body.user_metadata)
    except InfoNotFound:
        raise not_found(asset_id) from None
    except NameTaken:
        raise ApiError(
            409,
            "NAME_TAKEN",
            f"name: this content already has an entry named {body.name!r}",
            {"field": "name"},
        ) from None
    ctx.totals.clear()
    return get_asset_route(request, asset_id)


@router.head("/api/assets/hash/{digest}", responses={**ERRORS, 404: {"description": "unknown"}})
def head_hash_route(request: Request, digest: str) -> Response:
    digest = digest.strip().lower()
    if not _HASH.match(digest):
        raise bad_field("hash", "must be like 'blake3:<64 hex digits>'", "INVALID_HASH")
    with _ctx(request).read_sessions() as s:
        found = hash_exists(s, digest)
    return Response(status_code=200 if found else 404)


@router.get("/api/tags", response_model=TagsList, responses=ERRORS)
def list_tags_route(
    request: Request,
    prefix: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    order: Literal["count_desc", "name_asc"] = "count_desc",
) -> TagsList:
    with _ctx(request).read_sessions() as s:
        rows, total = list_tags(
            s,
            prefix=(prefix or "").strip().lower() or None,
            limit=limit,
            offset=offset,
            order=order,
        )
    return TagsList(
        tags=[TagUsage(name=n, count=c) for n, c in rows],
        total=total,
        has_more=offset + len(rows) < total,
    )


@router.post("/api/assets/{asset_id}/tags", response_model=TagsAdded, responses=ERRORS)
def add_tags_route(request: Request, asset_id: str, body: TagsBody) -> TagsAdded:
    ctx = _ctx(request)
    try:
        with ctx.write_sessions() as s, s.begin():
            change = add_manual_tags(s, _info_id(asset_id), body.tags)
    except InfoNotFound:
        raise not_found(asset_id) from None
    ctx.totals.clear()
    return TagsAdded(
        added=change.changed, already_present=change.unchanged, total_tags=change.total
    )


@router.delete("/api/assets/{asset_id}/tags", response_model=TagsRemoved, responses=ERRORS)
def remove_tags_route(request: Request, asset_id: str, body: TagsBody) -> TagsRemoved:
    ctx = _ctx(request)
    try:
        with ctx.write_sessions() as s, s.begin():
            change = remove_tags(s, _info_id(asset_id), body.tags)
    except InfoNotFound:
        raise not_found(asset_id) from None
    ctx.totals.clear()
    return TagsRemoved(
        removed=change.changed,
        not_present=change.unchanged,
        protected=change.protected,
        total_tags=change.total,
    )
