"""Lifecycle: retention policies, legal holds, immutable tags, garbage collection, scrub.

Everything here decides from the metadata views and the event log, and
changes state only through MetadataStore, so every deletion, hold and
override is an event (docs/lifecycle.md, docs/holds.md, docs/gc.md,
docs/verify.md; ADR-0007 and ADR-0008).

The scrub itself is ``registry.lifecycle.verify.verify`` (its module shares
its name, so it is not re-exported here).
"""

from __future__ import annotations

from registry.lifecycle.gc import GcReport, collect
from registry.lifecycle.policy import LifecyclePolicy, parse_policy, policy_of
from registry.lifecycle.pulls import PullRecorder
from registry.lifecycle.retention import ApplyReport, RetentionPlan, apply, plan
from registry.lifecycle.verify import VerifyReport

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
