"""Lifecycle: retention, legal holds, garbage collection, pull records, scrub.

The policy they follow (retention rules and classes, immutable tags) is
parsed by ``registry.rules.policy``; the protection rules are ``registry.rules``.

Everything here decides from the metadata views and the event log, and
changes state only through MetadataStore, so every deletion, hold and
override is an event (docs/lifecycle.md, docs/holds.md, docs/gc.md,
docs/verify.md; ADR-0007 and ADR-0008).

The scrub itself is ``registry.lifecycle.verify.verify`` (its module shares
its name, so it is not re-exported here).
"""

from __future__ import annotations

from registry.lifecycle.gc import GcReport, collect
from registry.lifecycle.pulls import PullRecorder
from registry.lifecycle.retention import ApplyReport, RetentionPlan, apply, plan
from registry.lifecycle.verify import VerifyReport

__all__ = [
    "ApplyReport",
    "GcReport",
    "PullRecorder",
    "RetentionPlan",
    "VerifyReport",
    "apply",
    "collect",
    "plan",
]
