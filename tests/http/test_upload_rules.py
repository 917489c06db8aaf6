"""The chunked-upload rules of registry/service/upload.py, without any I/O."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from oci.errors import BlobUploadInvalid, RangeNotSatisfiable, SizeInvalid
from registry.http.errors import headers_of
from registry.service.upload import ChunkPlan, parse_content_range, plan_chunk, range_header

offsets = st.integers(min_value=0, max_value=2**62)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0-99", (0, 99)),
        ("100-199", (100, 199)),
        ("bytes 5-9/*", (5, 9)),
        ("bytes 5-9/10", (5, 9)),
        ("bytes=5-9", (5, 9)),
        (" 7-7 ", (7, 7)),
    ],
)
def test_content_range_forms_clients_send(header: str, expected: tuple[int, int]) -> None:
    assert parse_content_range(header) == expected


@pytest.mark.parametrize("header", ["", "5", "-9", "5-", "a-b", "bytes 5-9/x", "0-1,2-3"])
def test_malformed_content_range(header: str) -> None:
    with pytest.raises(BlobUploadInvalid) as caught:
        parse_content_range(header)
    assert caught.value.status == 400


def test_content_range_ending_before_it_starts() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_content_range("9-5")


@given(start=offsets, size=st.integers(min_value=1, max_value=2**40))
def test_a_chunk_at_the_offset_is_accepted(start: int, size: int) -> None:
    header = f"{start}-{start + size - 1}"
    assert plan_chunk(start, header, str(size)) == ChunkPlan(start, size)
    assert plan_chunk(start, header, None) == ChunkPlan(start, size)


@given(offset=offsets, start=offsets)
def test_a_chunk_elsewhere_is_416_naming_the_offset(offset: int, start: int) -> None:
    assume(start != offset)
    with pytest.raises(RangeNotSatisfiable) as caught:
        plan_chunk(offset, f"{start}-{start}", None)
    # The client learns where to resume from the Range header.
    assert headers_of(caught.value) == {"Range": range_header(offset)}
    assert caught.value.status == 416


def test_streamed_chunk_without_content_range() -> None:
    assert plan_chunk(10, None, None) == ChunkPlan(10, None)
    assert plan_chunk(10, None, "5") == ChunkPlan(10, 5)
    assert plan_chunk(10, None, "0") == ChunkPlan(10, 0)


def test_content_length_must_agree_with_content_range() -> None:
    with pytest.raises(SizeInvalid):
        plan_chunk(0, "0-9", "11")


@pytest.mark.parametrize("length", ["-1", "ten", "1.5", ""])
def test_malformed_content_length(length: str) -> None:
    with pytest.raises(SizeInvalid):
        plan_chunk(0, None, length)


@pytest.mark.parametrize(("offset", "header"), [(0, "0-0"), (1, "0-0"), (2, "0-1"), (10, "0-9")])
def test_range_header_is_inclusive(offset: int, header: str) -> None:
    assert range_header(offset) == header
