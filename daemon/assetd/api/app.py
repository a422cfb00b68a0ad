"""The FastAPI application: error shape, bearer token, and the routers.

Every error is ``{"error": {"code", "message", "details"}}``: 400 for validation (the message
names the field), 401 without the right token, 404, 409, 503 when the database does not
answer. Handlers that touch the database are plain functions (FastAPI runs them on its thread
pool), so a slow query never holds up the event loop, and the loop never holds up the daemon.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from assetd import __version__, log
from assetd.api.context import ApiContext
from assetd.api.errors import ApiError
from assetd.catalog.engine import one_line

_log = log.get_logger(__name__)

OPEN_PATHS = frozenset({"/healthz"})  # served without a token


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("query", "body", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, RequestValidationError)
    errors = [
        {"field": _field(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in err.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    body_error = any(tuple(e.get("loc", ("",)))[:1] == ("body",) for e in err.errors())
    return error_response(
        400,
        "INVALID_BODY" if body_error else "INVALID_QUERY",
        f"{first['field']}: {first['message']}",
        {"field": first["field"], "errors": errors},
    )


async def _api_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, ApiError)
    return error_response(err.status, err.code, err.message, err.details)


async def _http_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, StarletteHTTPException)
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    return error_response(err.status_code, codes.get(err.status_code, "HTTP_ERROR"), err.detail)


async def _db_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, SQLAlchemyError)
    if isinstance(err, DBAPIError):
        return error_response(503, "DATABASE_UNAVAILABLE", f"database: {one_line(err)}")
    _log.error("api.request_failed", path=request.url.path, error=one_line(err))
    return error_response(500, "INTERNAL", "unexpected database error; see the daemon's log")


class BearerToken:
    """Pure ASGI middleware (no response buffering, so the event stream stays a stream)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, value = given.partition(b" ")
        if not given:
            reply = error_response(401, "UNAUTHORIZED", "missing Authorization: Bearer token")
        elif scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), self.token):
            reply = error_response(401, "UNAUTHORIZED", "wrong bearer token")
        else:
            await self.app(scope, receive, send)
            return
        await reply(scope, receive, send)


def create_app(ctx: ApiContext) -> FastAPI:
    from assetd.api.routes_assets import router as assets_router
    from assetd.api.routes_ops import router as ops_router

    app = FastAPI(
        title="assetd",
        version=__version__,
        description="The live asset catalog of assetd, shaped like ComfyUI's /api/assets.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _db_error)

    app.add_middleware(BearerToken, token=ctx.runtime.token)
    app.include_router(assets_router)
    app.include_router(ops_router)
    return app
