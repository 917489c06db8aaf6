"""What the application holds for its handlers and middleware: one typed record.

Starlette offers ``app.state``, an untyped bag; here it holds exactly one
entry, an ``AppState``, and every reader goes through ``state_of``. The
record is made by ``create_app`` (the per-process caches) and completed by
the lifespan (the registry, the authority, the event source), or by a test
that hands its own in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from registry.auth import Authority
from registry.config import Settings
from registry.events import EventSource
from registry.http._listing import TagListCache
from registry.lifecycle.pulls import PullRecorder
from registry.service.registry import Registry

__all__ = ["AppState", "state_of"]

_KEY = "artifact_store"


@dataclass(eq=False, slots=True)
class AppState:
    """The registry, auth and event source of a running app, and its per-process caches."""

    settings: Settings
    # Manifest GETs note pulls here; a lifespan task records them.
    pulls: PullRecorder
    # Rendered tag lists, checked against the repository's newest event per request.
    tag_lists: TagListCache = field(default_factory=TagListCache)
    # Set by the lifespan (or by a test that owns them): None until then.
    registry: Registry | None = None
    auth: Authority | None = None  # None too when auth is off
    events: EventSource | None = None

    def install(self, app: Starlette) -> None:
        setattr(app.state, _KEY, self)

    def require_registry(self) -> Registry:
        if self.registry is None:
            raise RuntimeError("the app's registry is not open (lifespan not started)")
        return self.registry

    def require_events(self) -> EventSource:
        if self.events is None:
            raise RuntimeError("the app's event source is not open (lifespan not started)")
        return self.events

    def require_auth(self) -> Authority:
        if self.auth is None:
            raise RuntimeError("the app has no authority (auth is off or not open)")
        return self.auth


def state_of(source: HTTPConnection | Starlette) -> AppState:
    """The AppState of the app serving ``source`` (a request) or of ``source`` (an app)."""
    app = source.app if isinstance(source, HTTPConnection) else source
    state = getattr(app.state, _KEY, None)
    if not isinstance(state, AppState):
        raise RuntimeError("the app was not made by create_app (no AppState)")
    return state
