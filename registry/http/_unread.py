"""ASGI middleware: an HTTP/1.1 response sent before its request's body was read ends the
connection.

A registry answers many requests before reading their bodies: a PATCH to an
unknown or expired upload, a push to a malformed name, a 416, a 401 or 403
from the auth layer. The client may still be sending megabytes. If the
connection stayed open, the server would stop reading once its buffers fill
and a client that sends the whole body before reading the answer (Python's
requests and httpx do) would block until its timeout without ever seeing
the error: Hypercorn behaved so (a 64 MiB PATCH to an unknown upload: 20 s,
then a timeout, where distribution and Granian answered 404 within 0.8 s).
``Connection: close`` on such a response, with the unread body pieces taken
off the server while the response goes out (Hypercorn hands them to the app
through a bounded queue and cannot close the connection while that queue is
full), makes the server close the connection after it; the client's next
write fails, and clients then read the response waiting for them (as they do
with distribution, which closes such connections too). A connection whose
request body was read to its end stays open as before.

A client that goes away mid-body is routine (a cancelled push, a dropped
link), not a fault of the server: whichever layer was reading the body
(a route, the auth layer's ``/token``, the quota guard) raises
``ClientDisconnect``; it is logged here as one INFO line and nothing is
answered, instead of a 500 and two tracebacks. What the request had written
is the service's to undo (an upload chunk cut short is dropped).
"""

from __future__ import annotations

import logging

import anyio
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CloseOnUnreadBody"]

log = logging.getLogger("artifact_store.http")


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


def _body_over(message: Message) -> bool:
    """Whether ``message`` is the request body's last piece (or the client is gone)."""
    return message["type"] != "http.request" or not message.get("more_body", False)


class CloseOnUnreadBody:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):  # GET and HEAD: the hot path
            await self._app(scope, receive, send)
            return
        try:
            if scope.get("http_version") in ("1.0", "1.1"):
                await self._closing(scope, receive, send)
            else:  # HTTP/2 ends a stream, not the connection: nothing to close
                await self._app(scope, receive, send)
        except ClientDisconnect:
            method, path = scope["method"], scope["path"]
            log.info("request %s %s: the client disconnected before its body ended", method, path)

    async def _closing(self, scope: Scope, receive: Receive, send: Send) -> None:
        unread = True

        async def receiving() -> Message:
            nonlocal unread
            message = await receive()
            if _body_over(message):
                unread = False
            return message

        async def drain() -> None:
            while not _body_over(await receive()):
                pass

        async def sending(message: Message) -> None:
            if not unread:
                await send(message)
            elif message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                await send({**message, "headers": [*headers, (b"connection", b"close")]})
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # The server may be blocked handing body pieces to the app, and so unable
                # to close: take them while the last of the response goes out.
                async with anyio.create_task_group() as group:
                    group.start_soon(drain)
                    await send(message)
                    group.cancel_scope.cancel()
            else:
                await send(message)

        await self._app(scope, receiving, sending)
