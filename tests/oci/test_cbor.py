"""Canonical CBOR: RFC 8949 §4.2.1 on encode, and refusal of anything else on decode."""

from __future__ import annotations

import math
import struct
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci.cbor import decode_canonical, encode
from oci.errors import ErrorCode, ManifestInvalid

# -- known encodings (RFC 8949 Appendix A) -------------------------------------


@pytest.mark.parametrize(
    ("value", "hex_"),
    [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (1000, "1903e8"),
        (1000000, "1a000f4240"),
        (2**64 - 1, "1bffffffffffffffff"),
        (2**64, "c249010000000000000000"),
        (-1, "20"),
        (-(2**64), "3bffffffffffffffff"),
        (-(2**64) - 1, "c349010000000000000000"),
        (0.0, "f90000"),
        (-0.0, "f98000"),
        (1.5, "f93e00"),
        (65504.0, "f97bff"),
        (100000.0, "fa47c35000"),
        (1.1, "fb3ff199999999999a"),
        (5.960464477539063e-8, "f90001"),
        (math.inf, "f97c00"),
        (-math.inf, "f9fc00"),
        (math.nan, "f97e00"),
        (False, "f4"),
        (True, "f5"),
        (None, "f6"),
        (b"", "40"),
        (b"\x01\x02", "420102"),
        ("", "60"),
        ("ü", "62c3bc"),
        ([], "80"),
        ([1, [2, 3]], "8201820203"),
        ((1, 2), "820102"),
        ({}, "a0"),
        ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    ],
)
def test_known_encodings(value: Any, hex_: str) -> None:
    assert encode(value).hex() == hex_


def test_map_keys_sort_bytewise_not_length_first() -> None:
    # 1000 encodes as 19 03 e8 and -1 as 20: bytewise, 1000 comes first;
    # the RFC 7049 length-first rule (and cbor2's canonical mode) puts -1 first.
    assert encode({-1: "x", 1000: "y"}).hex() == "a21903e86179206178"
    # Text keys of different lengths: 0x61 'z' sorts before 0x62 'aa'.
    assert encode({"aa": 0, "z": 1}).hex() == "a2617a0162616100"
    # Byte string keys (major 2) before text keys (major 3).
    assert encode({"a": 1, b"a": 2}).hex() == "a2416102616101"


def test_insertion_order_does_not_matter() -> None:
    assert encode({"b": 1, "a": 2, "c": {"y": 1, "x": 2}}) == encode(
        {"c": {"x": 2, "y": 1}, "a": 2, "b": 1}
    )


def test_long_lengths_use_the_shortest_argument() -> None:
    assert encode("a" * 24)[:2].hex() == "7818"
    assert encode(b"a" * 256)[:3].hex() == "590100"
    assert encode([0] * 65536)[:5].hex() == "9a00010000"
    assert encode({str(i): i for i in range(24)})[:2].hex() == "b818"


@pytest.mark.parametrize("value", [object(), {1, 2}, 1j, bytearray(b"x"), cbor2.CBORTag(1, 0)])
def test_encode_refuses_values_outside_the_data_model(value: object) -> None:
    with pytest.raises(TypeError, match="canonical CBOR"):
        encode(value)


# -- decode rejects -------------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_", "why"),
    [
        ("1805", "non-minimal integer 5"),
        ("190005", "non-minimal integer 5, two bytes"),
        ("1a00000005", "non-minimal integer 5, four bytes"),
        ("1b0000000000000005", "non-minimal integer 5, eight bytes"),
        ("3800", "non-minimal negative integer -1"),
        ("c24105", "bignum for a value that fits major type 0"),
        ("c249000100000000000000", "bignum with a leading zero"),
        ("781761616161616161616161616161616161616161616161", "non-minimal text length"),
        ("5801ff", "non-minimal byte string length"),
        ("980101", "non-minimal array length"),
        ("b801616101", "non-minimal map length"),
        ("a2616201616101", "unsorted map keys"),
        ("a22061611903e86162", "map keys in length-first order"),
        ("a2616101616102", "duplicate map keys"),
        ("5f42010243030405ff", "indefinite-length byte string"),
        ("7f657374726561646d696e67ff", "indefinite-length text string"),
        ("9f0102ff", "indefinite-length array"),
        ("bf616101616202ff", "indefinite-length map"),
        ("fa3fc00000", "1.5 as a single"),
        ("fb3ff8000000000000", "1.5 as a double"),
        ("fb7ff8000000000000", "NaN as a double"),
        ("f97e01", "NaN with a payload"),
        ("fa7f800000", "infinity as a single"),
        ("c11a514b67b0", "tag outside the data model (epoch datetime)"),
        ("d9d9f700", "self-described CBOR tag"),
        ("f7", "undefined"),
        ("e0", "simple value"),
        ("0000", "trailing bytes"),
        ("", "empty input"),
        ("ff", "lone break"),
        ("1b", "truncated argument"),
        ("62c3", "truncated text"),
        ("62c328", "invalid UTF-8"),
        ("1c", "reserved additional information"),
        ("9b00000000ffffffff", "huge declared length, no content"),
        ("81" * 1000 + "00", "nesting beyond the decoder's depth limit"),
    ],
)
def test_decode_rejects(hex_: str, why: str) -> None:
    with pytest.raises(ManifestInvalid) as info:
        decode_canonical(bytes.fromhex(hex_))
    assert info.value.code is ErrorCode.MANIFEST_INVALID


def test_rejection_messages_say_what_is_wrong() -> None:
    with pytest.raises(ManifestInvalid, match="non-canonical"):
        decode_canonical(bytes.fromhex("1805"))
    with pytest.raises(ManifestInvalid, match="trailing bytes"):
        decode_canonical(bytes.fromhex("0000"))
    with pytest.raises(ManifestInvalid, match="not valid CBOR"):
        decode_canonical(bytes.fromhex("62c3"))
    with pytest.raises(ManifestInvalid, match="(?i)indefinite"):
        decode_canonical(bytes.fromhex("9f0102ff"))
    with pytest.raises(ManifestInvalid, match="(?i)duplicate"):
        decode_canonical(bytes.fromhex("a2616101616102"))


# -- properties -----------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=12), children, max_size=6)
        | st.dictionaries(st.integers() | st.binary(max_size=4), children, max_size=4)
    ),
    max_leaves=40,
)


@given(values)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    assert decode_canonical(data) == value
    assert encode(decode_canonical(data)) == data


@given(values)
def test_independent_decoder_reads_what_we_write(value: Any) -> None:
    assert cbor2.loads(encode(value)) == value


@given(st.dictionaries(st.text(max_size=8) | st.integers() | st.binary(max_size=4), st.none()))
def test_map_keys_are_in_bytewise_order(value: dict[Any, None]) -> None:
    keys = [encode(k) for k in value]
    data = encode(value)
    # The keys appear in the output in sorted order of their encodings.
    positions = sorted(keys)
    offset = len(encode(len(value))) if value else 1  # the map head has the count's width
    for key in positions:
        assert data[offset : offset + len(key)] == key
        offset += len(key) + 1  # each value is None, f6
    assert offset == len(data)


def _shortest_float_width(x: float) -> int:
    if math.isnan(x):
        return 2
    for fmt, width in (("e", 2), ("f", 4)):
        try:
            if struct.unpack(f">{fmt}", struct.pack(f">{fmt}", x))[0] == x:
                return width
        except OverflowError:
            continue
    return 8


@given(st.floats(allow_nan=False) | st.floats(width=16) | st.floats(width=32))
def test_floats_use_the_shortest_exact_width(x: float) -> None:
    data = encode(x)
    assert len(data) == 1 + _shortest_float_width(x)
    assert decode_canonical(data) == x or math.isnan(x)


@given(values)
def test_longer_encodings_of_the_same_value_are_rejected(value: Any) -> None:
    # cbor2's own default (non-canonical) encoding differs from ours for wide
    # floats and unsorted maps; whenever it differs, decode_canonical refuses it.
    other = cbor2.dumps(value)
    if other != encode(value):
        with pytest.raises(ManifestInvalid):
            decode_canonical(other)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_are_either_canonical_or_manifest_invalid(data: bytes) -> None:
    try:
        value = decode_canonical(data)
    except ManifestInvalid:
        return
    assert encode(value) == data
