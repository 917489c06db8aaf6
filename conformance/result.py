"""What a check can conclude, and how it says so.

A check is a coroutine that returns normally when the registry behaved as
the spec requires. Anything else it concludes, it raises:

    CheckOutcome
    ├── CheckFailed       the registry broke a MUST (or a SHOULD this suite holds it to)
    ├── NotSupported      the registry answered the way the spec allows for an
    │                     optional feature it does not offer (405 on DELETE,
    │                     404 on the referrers API, 202 instead of a mount)
    └── Skipped           the check could not set up what it reads (a pull-only
                          registry cannot be given fixtures), so it says nothing

The runner turns each into a ``Result``; an unexpected exception (a dropped
connection, a bug in a check) becomes a failure carrying its type, because a
registry that resets the connection has not passed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "SPEC_URL",
    "CheckFailed",
    "CheckOutcome",
    "NotSupported",
    "Result",
    "Skipped",
    "Status",
]

SPEC_URL = "https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md"


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    UNSUPPORTED = "unsupported"


class CheckOutcome(Exception):
    """A check's conclusion other than a pass; its message is shown to the user."""

    status = Status.FAIL


class CheckFailed(CheckOutcome, AssertionError):
    # An AssertionError too, so that the suite's own helpers read like asserts
    # and pytest shows them as such when a check is called directly.
    status = Status.FAIL


class NotSupported(CheckOutcome):
    status = Status.UNSUPPORTED


class Skipped(CheckOutcome):
    status = Status.SKIPPED


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one check against one registry."""

    name: str
    category: str
    status: Status
    message: str
    spec: str  # URL of the spec section the check reads
    seconds: float

    def as_dict(self) -> dict[str, str | float]:
        return {
            "name": self.name,
            "category": self.category,
            "status": str(self.status),
            "message": self.message,
            "spec": self.spec,
            "seconds": round(self.seconds, 4),
        }
