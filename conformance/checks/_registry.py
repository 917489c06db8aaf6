"""The list of checks, filled by the ``@check`` decorator as each module is imported."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from conformance.context import Context
from conformance.result import SPEC_URL

__all__ = ["CATEGORIES", "CHECKS", "Check", "check"]

# Run order. ``errors`` comes last: its sweep judges every 4xx seen before it.
CATEGORIES = (
    "pull",
    "push",
    "discovery",
    "management",
    "referrers",
    "ranges",
    "sha512",
    "errors",
)

CheckFunction = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    category: str
    spec: str
    summary: str
    run: CheckFunction


CHECKS: list[Check] = []


def check(category: str, section: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check; ``section`` is the spec's anchor, e.g. ``#post-then-put``."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")

    def register(function: CheckFunction) -> CheckFunction:
        summary = (function.__doc__ or function.__name__).strip().splitlines()[0]
        CHECKS.append(Check(function.__name__, category, SPEC_URL + section, summary, function))
        return function

    return register
