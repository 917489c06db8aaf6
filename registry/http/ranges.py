"""HTTP Range requests on blobs (RFC 9110 §14).

One byte range per request is served. A header in another unit, or naming
several ranges, is ignored and the whole blob is sent, as RFC 9110 §14.2
allows ("A server MAY ignore the Range header field"; a range unit it does
not understand it MUST ignore). A ``bytes=`` header that is not a valid
ranges-specifier (``bytes=abc``, ``bytes=5-2``) is rejected with 416 and
``Content-Range: bytes */size``, which §14.2 also allows ("MAY ignore or
reject ... an invalid ranges-specifier"): a client that sent it has a bug it
should hear about. https://www.rfc-editor.org/rfc/rfc9110#section-14.2

Positions are digits of any length (§14.1.2 sets no bound): leading zeros
are read as such, and a last position past the end of the blob is clamped
to it. A position too long to be a byte offset is read as "past any blob"
without converting the whole digit string.
"""

from __future__ import annotations

import re

from oci.errors import RangeNotSatisfiable

__all__ = ["parse_range"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)
# Longer than any byte offset (2**63 has 19 digits); stands in for bigger numbers.
_SIGNIFICANT_DIGITS = 19
_PAST_ANY_BLOB: int = 10**_SIGNIFICANT_DIGITS


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) of the one range ``header`` asks for; None for the whole blob."""
    if header is None:
        return None
    spec = header.strip().replace(" ", "")
    unit, sep, ranges = spec.partition("=")
    if not sep or unit.lower() != "bytes" or "," in ranges:
        return None
    match = _RANGE.fullmatch(spec)
    if match is None or not (match.group(1) or match.group(2)):
        raise _unsatisfiable(header, size, "is not a valid byte range")
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        length = min(_position(last), size)
        if length == 0:
            raise _unsatisfiable(header, size)
        return size - length, length
    start = _position(first)
    end = size - 1 if not last else min(_position(last), size - 1)
    if last and _position(last) < start:
        raise _unsatisfiable(header, size, "ends before it starts")
    if start >= size:
        raise _unsatisfiable(header, size)
    return start, end - start + 1


def _position(digits: str) -> int:
    significant = digits.lstrip("0")
    if len(significant) > _SIGNIFICANT_DIGITS:
        return _PAST_ANY_BLOB
    return int(significant or "0")


def _unsatisfiable(
    header: str, size: int, why: str = "lies outside the blob"
) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"range {header!r} {why} ({size} bytes)",
        detail={"range": header, "size": size},
        size=size,
    )
