"""The chunked-upload rules, sans I/O.

Theory of operation. An upload session is a byte sequence that only grows at
its end. Every PATCH or PUT brings a chunk; the handler parses the request's
``Content-Range`` and ``Content-Length`` into plain facts and asks
``plan_chunk`` whether the chunk may be appended at the session's current
offset. The answer is either the expected size of the chunk (None when the
client streams without saying) or a spec error; the handler does the I/O.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-a-blob-in-chunks
"The registry MUST respond with 416 Requested Range Not Satisfiable if the
chunk is out of order", and the session stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oci.errors import BlobUploadInvalid, RangeNotSatisfiable, SizeInvalid

__all__ = ["ChunkPlan", "parse_content_range", "plan_chunk", "range_header"]

# Clients send "start-end" (the spec's form) and sometimes "bytes start-end/*"
# or "bytes=start-end" (some docker versions); all name inclusive offsets.
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?")


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    start: int
    # Bytes the chunk must hold, when the client said (Content-Range or Content-Length).
    length: int | None


def parse_content_range(value: str) -> tuple[int, int]:
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        raise BlobUploadInvalid(f"malformed Content-Range {value!r}", detail={"range": value})
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeNotSatisfiable(
            f"Content-Range {value!r} ends before it starts", detail={"range": value}
        )
    return start, end


def plan_chunk(offset: int, content_range: str | None, content_length: str | None) -> ChunkPlan:
    """Decide whether a chunk may be appended at ``offset``."""
    length: int | None = None
    if content_length is not None:
        if not content_length.isdigit():
            raise SizeInvalid(f"malformed Content-Length {content_length!r}")
        length = int(content_length)
    if content_range is None:
        return ChunkPlan(offset, length)
    start, end = parse_content_range(content_range)
    if start != offset:
        raise RangeNotSatisfiable(
            f"chunk starts at {start} but the upload is at offset {offset}",
            detail={"offset": offset, "range": content_range},
            offset=offset,
        )
    size = end - start + 1
    if length is not None and length != size:
        raise SizeInvalid(
            f"Content-Length {length} does not match Content-Range {content_range!r}",
            detail={"length": length, "range": content_range},
        )
    return ChunkPlan(start, size)


def range_header(offset: int) -> str:
    """The ``Range`` header of an upload holding ``offset`` bytes (inclusive end)."""
    return f"0-{max(offset - 1, 0)}"
