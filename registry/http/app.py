"""The Starlette application: /v2/, /health, and the server's background work."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oci.errors import RegistryError
from registry.auth import AuthMiddleware, Authority, open_authority
from registry.config import Settings
from registry.events import WriteNotifier, running_events
from registry.events.http import routes as event_routes
from registry.http._listing import TagListCache
from registry.http._unread import CloseOnUnreadBody
from registry.http.errors import exception_handlers
from registry.http.holds import routes as hold_routes
from registry.http.retention import routes as retention_routes
from registry.http.v2 import routes as v2_routes
from registry.lifecycle.gc import run_scheduled as scheduled_gc
from registry.lifecycle.pulls import PullRecorder
from registry.native.routes import routes as native_routes
from registry.service.registry import Registry, expire_uploads, open_registry

__all__ = ["create_app"]

log = logging.getLogger("artifact_store")


async def health(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    checks: dict[str, str] = {}
    for name, check in (("database", registry.meta.check), ("storage", registry.blobs.check)):
        try:
            await check()
            checks[name] = "ok"
        except RegistryError as exc:
            checks[name] = f"error: {exc.message}"
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, 200 if ok else 503)


async def _expiry_loop(registry: Registry) -> None:
    interval = max(1.0, min(60.0, registry.settings.storage.upload_idle_seconds / 2))
    while True:
        await anyio.sleep(interval)
        try:
            await expire_uploads(registry)
        except RegistryError as exc:
            log.warning("upload expiry failed: %s", exc)


def create_app(
    settings: Settings, registry: Registry | None = None, auth: Authority | None = None
) -> Starlette:
    """The ASGI app. With ``registry`` or ``auth`` given (tests), the caller owns their lifetime."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if registry is None:
                current = await stack.enter_async_context(open_registry(settings))
            else:
                current = registry
            app.state.registry = current
            if settings.auth.enabled and auth is None:
                app.state.auth = await stack.enter_async_context(open_authority(settings))
            app.state.events = await stack.enter_async_context(
                running_events(current.meta, settings.events.nats_url, settings.events.nats_subject)
            )
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_expiry_loop, current)
                tasks.start_soon(scheduled_gc, current)  # gc_interval_seconds; 0: returns
                tasks.start_soon(app.state.pulls.run, current.writes)
                yield
                tasks.cancel_scope.cancel()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            *v2_routes,
            *native_routes,
            *hold_routes,
            *retention_routes,
            *event_routes(lambda request: request.app.state.events),
        ],
        exception_handlers=exception_handlers,
        middleware=[
            Middleware(CloseOnUnreadBody),
            *([Middleware(AuthMiddleware)] if settings.auth.enabled else []),
            Middleware(WriteNotifier),
        ],
        lifespan=lifespan,
    )
    # Manifest GETs note pulls here; the lifespan task above records them.
    app.state.pulls = PullRecorder(settings.lifecycle.pull_record_seconds)
    # Rendered tag lists, checked against the repository's newest event per request.
    app.state.tag_lists = TagListCache()
    if registry is not None:
        app.state.registry = registry
    if auth is not None:
        app.state.auth = auth
    return app
