"""A black-box OCI Distribution Spec v1.1 test suite that checks any registry by URL.

It speaks HTTP only and never imports the registry it tests, so the same
checks judge artifact-store, CNCF distribution, or any other registry:

    results = await run_checks("http://127.0.0.1:5000")
    assert not mismatches(results, known={"referrers_list": Status.UNSUPPORTED})

or from a shell: ``python -m conformance --url http://127.0.0.1:5000``.
"""

from __future__ import annotations

from conformance.checks import CATEGORIES, CHECKS, Check
from conformance.result import (
    SPEC_URL,
    CheckFailed,
    CheckOutcome,
    NotSupported,
    Result,
    Skipped,
    Status,
)
from conformance.runner import ClientFactory, default_client, mismatches, run_checks, select

__all__ = [
    "CATEGORIES",
    "CHECKS",
    "SPEC_URL",
    "Check",
    "CheckFailed",
    "CheckOutcome",
    "ClientFactory",
    "NotSupported",
    "Result",
    "Skipped",
    "Status",
    "default_client",
    "mismatches",
    "run_checks",
    "select",
]
