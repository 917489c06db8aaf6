"""``artifact-store events tail``: follow the event stream of a running registry.

Theory of operation. The command long-polls ``GET /api/v1/events`` (see
``registry.http.events``): each answer carries the events after the cursor
and ``next``, the cursor to ask from next time, which may move past events a
filter skipped. The cursor lives here, in the client, so a dropped
connection, a restarted server or a replica behind a load balancer costs
nothing: the next request asks again after the last seq seen, and no event
is printed twice or skipped. Transport errors and 5xx/429 answers are
retried with capped exponential backoff (forever while following, a few
times otherwise); anything else the server refuses ends the command with
its reason. Ctrl-C ends it with status 0, as ``tail -f`` does.

Without ``--after`` a tail starts at the end of the log (``after=end``:
only what happens from now on); ``--from-start`` starts at the first
event. ``--no-follow`` prints what is there and exits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from registry.cli.client import ClientError, open_http, raise_for
from registry.cli.common import (
    DEFAULT_SERVER,
    PasswordOpt,
    ServerOpt,
    UsernameOpt,
    fail,
    short_digest,
    sign_in,
    size,
)

__all__ = ["describe", "events_app", "follow", "tail"]

_BACKOFF_START = 0.5
_BACKOFF_MAX = 15.0
_RETRIES_WITHOUT_FOLLOW = 5
_TRANSIENT = frozenset({429, 502, 503, 504})

Params = list[tuple[str, str | int | float | bool | None]]

events_app = typer.Typer(help="The registry's event stream.", no_args_is_help=True)


def follow(
    http: httpx.Client,
    *,
    after: int | None,
    repository: str | None = None,
    types: list[str] | None = None,
    keep_following: bool = True,
    limit: int = 100,
    wait: float = 30.0,
    on_retry: Callable[[str, int | None, float], None] = lambda reason, cursor, delay: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """The events after ``after`` (None: from the end of the log), one at a time, in seq order.

    While ``keep_following``, it waits for new events forever and resumes
    after the last seq seen when the connection fails; otherwise it ends
    once the log is exhausted.
    """
    cursor: int | None = after
    failures = 0
    while True:
        params: Params = [("after", "end" if cursor is None else cursor), ("limit", limit)]
        if repository is not None:
            params.append(("repository", repository))
        params += [("type", t) for t in types or []]
        if keep_following:
            params.append(("wait", wait))
        reason: str | None = None
        try:
            response = http.get("/api/v1/events", params=params)
        except httpx.TransportError as exc:
            reason = f"connection failed ({type(exc).__name__})"
        else:
            if response.status_code >= 500 or response.status_code in _TRANSIENT:
                reason = f"HTTP {response.status_code}"
        if reason is not None:
            failures += 1
            if not keep_following and failures > _RETRIES_WITHOUT_FOLLOW:
                raise ClientError(f"events: {reason}; gave up after {failures} attempts")
            delay = min(_BACKOFF_START * 2 ** (failures - 1), _BACKOFF_MAX)
            on_retry(reason, cursor, delay)
            sleep(delay)
            continue
        raise_for(response, "events")
        failures = 0
        page = response.json()
        events: list[dict[str, Any]] = page["events"]
        for event in events:
            cursor = int(event["seq"])
            yield event
        cursor = max(int(page["next"]), cursor or 0)
        if not keep_following and len(events) < limit:
            return


def _size(count: Any) -> str:
    return size(count, largest="GiB")  # the tail's widest unit


def describe(event: dict[str, Any]) -> str:
    """The gist of an event's payload in a few words, per type."""
    p: dict[str, Any] = event.get("payload") or {}
    kind = event.get("type", "")
    if kind == "manifest.put":
        tags = ",".join(p.get("tags") or []) or "(untagged)"
        return f"{tags} -> {short_digest(p.get('digest'))} ({_size(p.get('size', 0))})"
    if kind == "blob.committed":
        return f"{short_digest(p.get('sha256'))} ({_size(p.get('size', 0))})"
    if kind == "blob.mounted":
        return f"{short_digest(p.get('sha256'))} from {p.get('from_repository', '?')}"
    if kind in ("blob.unlinked", "blob.deleted", "manifest.deleted", "manifest.pulled"):
        return short_digest(p.get("sha256") or p.get("digest"))
    if kind == "tag.deleted":
        return str(p.get("tag"))
    if kind.startswith("upload."):
        extra = p.get("reason") or (f"at {p['offset']}" if "offset" in p else "")
        return f"{str(p.get('upload_id', ''))[:12]} {extra}".strip()
    skip = {"repository"}
    parts = [
        f"{k}={v}"
        for k, v in sorted(p.items())
        if k not in skip and not isinstance(v, (dict, list))
    ]
    return " ".join(parts)[:200]


def _line(event: dict[str, Any]) -> Text:
    line = Text()
    line.append(f"{event.get('seq', ''):>7} ", style="dim")
    line.append(f"{event.get('ts', '')} ", style="dim")
    line.append(f"{event.get('type', ''):<16} ", style="bold cyan")
    line.append(f"{event.get('repository') or '-'} ", style="green")
    line.append(describe(event))
    line.append(f"  by {event.get('actor', '?')}", style="dim")
    return line


@events_app.command("tail")
def tail(
    server: ServerOpt = DEFAULT_SERVER,
    after: Annotated[
        int | None, typer.Option("--after", min=0, help="Start after this seq (default: now).")
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Start at the first event of the log.")
    ] = False,
    repository: Annotated[
        str | None, typer.Option("--repository", "-r", help="Only this repository's events.")
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", help="Only events of this type (repeatable)."),
    ] = None,
    keep_following: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Wait for new events (default).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Events per request.")] = 100,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Print the registry's events as they happen (resumes after a dropped connection)."""
    if after is not None and from_start:
        fail("--after and --from-start exclude each other")
    start = after if after is not None else (0 if from_start else None)
    credentials = sign_in(server, username, password)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False)

    def retrying(reason: str, cursor: int | None, delay: float) -> None:
        where = "the end" if cursor is None else f"seq {cursor}"
        err.print(f"events: {reason}; resuming after {where} in {delay:.1f}s", style="yellow")

    try:
        with open_http(server, credentials, connections=1, timeout=90.0) as http:
            stream = follow(
                http, after=start, repository=repository, types=types,
                keep_following=keep_following, limit=limit, on_retry=retrying,
            )  # fmt: skip
            for event in stream:
                if as_json:
                    typer.echo(json.dumps(event, separators=(",", ":"), sort_keys=True))
                else:
                    out.print(_line(event))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BrokenPipeError:
        raise typer.Exit(0) from None
    except ClientError as exc:
        fail(str(exc))
