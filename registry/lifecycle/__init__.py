"""Lifecycle: retention policies, legal holds, immutable tags, garbage collection, scrub.

Everything here decides from the metadata views and the event log, and
changes state only through MetadataStore, so every deletion, hold and
override is an event (docs/lifecycle.md, docs/holds.md, docs/gc.md,
docs/verify.md; ADR-0007 and ADR-0008).

The policy model is imported eagerly (the registry's context needs it to
open); the rest loads on first use, because it builds on that context
(``registry.service.registry``) and an eager import would be circular.
The scrub itself is ``registry.lifecycle.verify.verify`` (its module shares
its name, so it is not re-exported here).
"""

from __future__ import annotations

import importlib
from typing import Any

from registry.lifecycle.policy import LifecyclePolicy, parse_policy, policy_of

__all__ = [
    "ApplyReport",
    "GcReport",
    "LifecyclePolicy",
    "PullRecorder",
    "RetentionPlan",
    "VerifyReport",
    "apply",
    "collect",
    "parse_policy",
    "plan",
    "policy_of",
]

_LAZY = {
    "ApplyReport": "retention",
    "RetentionPlan": "retention",
    "apply": "retention",
    "plan": "retention",
    "GcReport": "gc",
    "collect": "gc",
    "PullRecorder": "pulls",
    "VerifyReport": "verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
