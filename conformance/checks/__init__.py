"""Every check, registered in run order by importing its module."""

from __future__ import annotations

from conformance.checks import (  # noqa: F401  (imported for their @check side effect)
    discovery,
    errors,
    management,
    pull,
    push_blobs,
    push_manifests,
    ranges,
    referrers,
    sha512,
)
from conformance.checks._registry import CATEGORIES, CHECKS, Check, check

__all__ = ["CATEGORIES", "CHECKS", "Check", "check"]
