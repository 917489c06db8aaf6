"""The Starlette application: every route, the middleware, and the server's background work."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware

from oci.errors import RegistryError
from registry.auth import Authority, open_authority
from registry.config import Settings
from registry.events import WriteNotifier, running_events
from registry.http import apidoc, events, health, holds, native, retention, v2
from registry.http._unread import CloseOnUnreadBody
from registry.http.auth import AuthMiddleware
from registry.http.errors import exception_handlers
from registry.http.state import AppState
from registry.lifecycle.gc import run_scheduled as scheduled_gc
from registry.lifecycle.pulls import PullRecorder
from registry.service.registry import Registry, expire_uploads, open_registry

__all__ = ["create_app"]

log = logging.getLogger("artifact_store")


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
    state = AppState(
        settings, PullRecorder(settings.lifecycle.pull_record_seconds), registry=registry, auth=auth
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if registry is None:
                current = await stack.enter_async_context(open_registry(settings))
            else:
                current = registry
            state.registry = current
            if settings.auth.enabled and auth is None:
                state.auth = await stack.enter_async_context(open_authority(settings))
            state.events = await stack.enter_async_context(
                running_events(current.meta, settings.events.nats_url, settings.events.nats_subject)
            )
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_expiry_loop, current)
                tasks.start_soon(scheduled_gc, current)  # gc_interval_seconds; 0: returns
                tasks.start_soon(state.pulls.run, current.writes)
                yield
                tasks.cancel_scope.cancel()

    app = Starlette(
        routes=[
            *health.routes,
            *v2.routes,
            *apidoc.routes,
            *native.routes,
            *holds.routes,
            *retention.routes,
            *events.routes(lambda request: state.require_events()),
        ],
        exception_handlers=exception_handlers,
        middleware=[
            Middleware(CloseOnUnreadBody),
            *([Middleware(AuthMiddleware)] if settings.auth.enabled else []),
            Middleware(WriteNotifier, source=lambda: state.events),
        ],
        lifespan=lifespan,
    )
    state.install(app)
    return app
