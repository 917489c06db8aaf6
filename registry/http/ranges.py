"""HTTP Range requests on blobs (RFC 9110 §14).

One byte range per request is served; a header naming several ranges, or one
we cannot parse, is ignored and the whole blob is sent, as RFC 9110 §14.2
allows ("A server MAY ignore the Range header field").
"""

from __future__ import annotations

import re

from oci.errors import RangeNotSatisfiable

__all__ = ["parse_range"]

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) of the one range ``header`` asks for; None for the whole blob."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        length = min(int(last), size)
        if length == 0:
            raise _unsatisfiable(header, size)
        return size - length, length
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        return None  # invalid range: ignored
    if start >= size:
        raise _unsatisfiable(header, size)
    return start, end - start + 1


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"range {header!r} lies outside the blob of {size} bytes",
        detail={"range": header, "size": size},
        headers={"Content-Range": f"bytes */{size}"},
    )
