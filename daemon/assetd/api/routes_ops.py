"""Seed, prune, health, metrics and the change feed."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from assetd.api.context import ApiContext
from assetd.api.errors import ApiError, bad_field
from assetd.api.models import (
    Health,
    PruneResult,
    SeedBody,
    SeedCancel,
    SeedCompleted,
    SeedProgress,
    SeedStarted,
    SeedStatus,
)
from assetd.api.routes_assets import ERRORS
from assetd.api.seed import Seeder
from assetd.api.sse import EventStreamResponse
from assetd.catalog.api_assets import database_answers
from assetd.catalog.engine import one_line
from assetd.catalog.prune import mark_missing_outside_prefixes_safely

router = APIRouter()


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _seeder(ctx: ApiContext) -> Seeder:
    seeder = ctx.runtime.seeder
    assert seeder is not None
    return seeder


def _scanning(ctx: ApiContext) -> bool:
    """A reconcile runs: the API's seed or one of the daemon's own."""
    return _seeder(ctx).running or ctx.daemon.scheduler.running


@router.post(
    "/api/assets/seed",
    response_model=SeedStarted | SeedCompleted,
    status_code=202,
    responses={**ERRORS, 200: {"model": SeedCompleted}, 409: {"model": SeedStarted}},
)
async def seed_route(
    request: Request,
    body: Annotated[SeedBody | None, Body()] = None,
    wait: Annotated[bool, Query()] = False,
) -> Any:
    ctx = _ctx(request)
    roots = list(ctx.daemon.roots)
    if body is not None and body.roots is not None:
        known = {r.name for r in roots}
        unknown = [n for n in body.roots if n not in known]
        if unknown or not body.roots:
            raise bad_field(
                "roots", f"unknown root(s) {unknown}; configured: {sorted(known)}", "INVALID_BODY"
            )
        roots = [r for r in roots if r.name in body.roots]
    seeder = _seeder(ctx)
    if ctx.daemon.scheduler.running or not seeder.start(roots):
        return JSONResponse({"status": "already_running"}, status_code=409)
    if not wait:
        return JSONResponse({"status": "started"}, status_code=202)
    await asyncio.to_thread(seeder.wait)
    status = seeder.status
    done = SeedCompleted(
        status="completed",
        progress=SeedProgress(**status.progress.as_dict()),
        errors=list(status.errors),
    )
    return JSONResponse(done.model_dump(mode="json"), status_code=200)


@router.get("/api/assets/seed/status", response_model=SeedStatus, responses=ERRORS)
def seed_status_route(request: Request) -> SeedStatus:
    status = _seeder(_ctx(request)).status
    return SeedStatus(
        state=status.state,  # type: ignore[arg-type]
        progress=SeedProgress(**status.progress.as_dict()),
        errors=list(status.errors),
    )


@router.post("/api/assets/seed/cancel", response_model=SeedCancel, responses=ERRORS)
def seed_cancel_route(request: Request) -> SeedCancel:
    return SeedCancel(status="cancelling" if _seeder(_ctx(request)).cancel() else "idle")


@router.post(
    "/api/assets/prune",
    response_model=PruneResult,
    responses={**ERRORS, 409: {"model": PruneResult}},
)
def prune_route(request: Request) -> Any:
    """This host's cache states outside the configured roots marked missing (the CLI's
    ``prune``); nothing is deleted."""
    ctx = _ctx(request)
    if _scanning(ctx):
        return JSONResponse({"status": "scan_running", "marked": 0}, status_code=409)
    catalog = ctx.daemon.catalog
    assert catalog is not None
    prefixes = [r.path for r in ctx.daemon.config.roots]
    if not prefixes:
        raise ApiError(409, "NO_ROOTS", "no roots are configured: prune would mark everything")
    marked = mark_missing_outside_prefixes_safely(
        catalog.sessions, prefixes, roots=catalog.host_root_ids()
    )
    if marked is None:
        raise ApiError(503, "DATABASE_UNAVAILABLE", "prune failed; see the daemon's log")
    ctx.totals.clear()
    return PruneResult(status="completed", marked=marked)


@router.get(
    "/healthz", response_model=Health, responses={503: {"model": Health}}, include_in_schema=True
)
def healthz_route(request: Request) -> Any:
    """200 while the pipeline's canary flows and the database answers (no token needed)."""
    ctx = _ctx(request)
    daemon = ctx.daemon
    reason = None
    if not daemon.canary.alive(daemon.pipeline.canary_seen):
        reason = "the pipeline canary is not flowing (events do not reach the worker)"
    elif not daemon.pipeline.db_ok:
        reason = "the database is unavailable to the pipeline"
    else:
        try:
            with ctx.read_sessions() as s:
                database_answers(s)
        except SQLAlchemyError as err:
            reason = f"the database does not answer: {one_line(err)}"
    if reason is not None:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return Health(status="ok")


@router.get("/metrics", response_class=Response, responses=ERRORS)
def metrics_route(request: Request) -> Response:
    from assetd.api.metrics import render

    body, content_type = render(_ctx(request))
    return Response(body, media_type=content_type)


@router.get(
    "/api/events",
    status_code=200,
    response_class=EventStreamResponse,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def events_route(
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventStreamResponse:
    """Server-Sent Events: each committed change, with an ``id:`` to resume from."""
    ctx = _ctx(request)
    if ctx.closing:
        raise ApiError(503, "STOPPING", "the daemon is stopping")
    return EventStreamResponse(ctx.ring, last_event_id)
