"""Run the checks against one registry and collect a ``Result`` per check.

The runner is async and takes an optional client factory so that the same
suite drives a registry over the network (the default client) or in the same
process (``httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=...)``).
Checks run one at a time: they are cheap, and a registry's answer should not
depend on what else happens to be in flight.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping

import httpx

from conformance.checks import CATEGORIES, CHECKS, Check
from conformance.context import Context, RunState
from conformance.result import CheckOutcome, Result, Status

__all__ = ["ClientFactory", "default_client", "mismatches", "run_checks", "select"]

ClientFactory = Callable[[str], httpx.AsyncClient]


def default_client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30.0))


def select(only: Iterable[str] | None = None, names: Iterable[str] | None = None) -> list[Check]:
    """The checks in run order, narrowed to categories ``only`` and/or check ``names``."""
    categories = set(only) if only else set(CATEGORIES)
    unknown = categories - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; choose from {list(CATEGORIES)}")
    wanted = set(names) if names else None
    chosen = [
        c for c in CHECKS if c.category in categories and (wanted is None or c.name in wanted)
    ]
    if wanted is not None and wanted - {c.name for c in chosen}:
        raise ValueError(f"unknown checks {sorted(wanted - {c.name for c in chosen})}")
    return sorted(chosen, key=lambda c: CATEGORIES.index(c.category))


async def run_one(state: RunState, chosen: Check) -> Result:
    context = Context(state, chosen.name)
    started = time.monotonic()
    status, message = Status.PASS, ""
    try:
        await chosen.run(context)
    except CheckOutcome as outcome:
        status, message = outcome.status, str(outcome)
    except Exception as exc:  # a dropped connection or a malformed answer fails the check
        status, message = Status.FAIL, f"{type(exc).__name__}: {exc}"
    finally:
        await context.cleanup()
    if status == Status.UNSUPPORTED:
        # An endpoint the registry does not offer may answer in its router's
        # words (a plain-text 404); the error-body sweep judges only the API
        # the registry claims.
        state.errors_seen[:] = [s for s in state.errors_seen if s.check != chosen.name]
    return Result(
        chosen.name, chosen.category, status, message, chosen.spec, time.monotonic() - started
    )


async def run_checks(
    url: str,
    namespace: str | None = None,
    *,
    client_factory: ClientFactory | None = None,
    only: Iterable[str] | None = None,
    names: Iterable[str] | None = None,
) -> list[Result]:
    """Run the suite against the registry at ``url``; one ``Result`` per selected check.

    ``namespace`` prefixes every repository the suite creates (default
    ``conformance/<random>``), so a run never touches anything else.
    """
    namespace = namespace or f"conformance/{secrets.token_hex(4)}"
    client = (client_factory or default_client)(url)
    async with client:
        state = RunState(client, namespace.strip("/"))
        try:
            return [await run_one(state, chosen) for chosen in select(only, names)]
        finally:
            await state.aclose()


def mismatches(results: Iterable[Result], known: Mapping[str, Status] | None = None) -> list[str]:
    """Each result whose status is not PASS (or, for checks in ``known``, not the status named).

    A test asserts this is empty: a known difference that starts passing is
    reported too, so the list of differences cannot go stale.
    """
    known = dict(known or {})
    problems = []
    seen = set()
    for result in results:
        seen.add(result.name)
        wanted = known.get(result.name, Status.PASS)
        if result.status != wanted:
            problems.append(
                f"{result.name}: {result.status} (expected {wanted})"
                + (f": {result.message}" if result.message else "")
            )
    problems += [
        f"{name}: known difference but the check did not run" for name in known.keys() - seen
    ]
    return problems
