"""Digest: the grammar we accept, computing, comparing, and the parse/format round trip."""

from __future__ import annotations

import hashlib

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci.digest import ALGORITHMS, Digest, new_hasher
from oci.errors import DigestInvalid, ErrorCode

SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parse_and_format() -> None:
    d = Digest.parse(SHA256_EMPTY)
    assert d.algorithm == "sha256"
    assert d.hex == SHA256_EMPTY.removeprefix("sha256:")
    assert str(d) == SHA256_EMPTY
    assert repr(d) == f"Digest({SHA256_EMPTY!r})"


@pytest.mark.parametrize(
    "value",
    [
        "sha256:../..",
        "sha256:../../../etc/passwd",
        "sha256:" + "A" * 64,  # upper-case hex
        "sha256:" + "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 64,  # a sha256-length sha512
        "blake3:" + "a" * 128,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha384:" + "a" * 96,
        "SHA256:" + "a" * 64,
        "sha256" + "a" * 64,
        ":" + "a" * 64,
        "sha256:",
        "",
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 63 + "A",  # the bad character last, too
        "sha256:" + "a" * 63 + "g",
        "sha256:" + "a" * 32 + "G" + "a" * 31,
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
        "sha256:" + "a" * 32 + "/" + "a" * 31,
    ],
)
def test_parse_rejects(value: str) -> None:
    with pytest.raises(DigestInvalid) as info:
        Digest.parse(value)
    assert info.value.code is ErrorCode.DIGEST_INVALID
    assert info.value.status == 400
    # The message names what was rejected, so a client can see its mistake.
    assert repr(value)[:20] in info.value.message


def test_parse_rejects_non_string() -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(b"sha256:" + b"a" * 64)  # type: ignore[arg-type]


def test_constructor_validates_too() -> None:
    with pytest.raises(DigestInvalid):
        Digest("sha256", "../..")
    with pytest.raises(DigestInvalid):
        Digest("sha256", "a" * 62 + "/.")  # the grammar of parse() is not there to catch it
    with pytest.raises(DigestInvalid, match="unsupported"):
        Digest("md5", "d41d8cd98f00b204e9800998ecf8427e")


@pytest.mark.parametrize(
    ("algorithm", "reference"),
    [
        ("sha256", lambda b: hashlib.sha256(b).hexdigest()),
        ("sha512", lambda b: hashlib.sha512(b).hexdigest()),
        ("blake3", lambda b: blake3.blake3(b).hexdigest()),
    ],
)
def test_compute_matches_the_reference_hash(algorithm: str, reference: object) -> None:
    data = b"artifact-store" * 1000
    d = Digest.compute(data, algorithm)
    assert d.algorithm == algorithm
    assert d.hex == reference(data)  # type: ignore[operator]
    assert len(d.hex) == ALGORITHMS[algorithm]


def test_compute_defaults_to_sha256() -> None:
    assert str(Digest.compute(b"")) == SHA256_EMPTY


def test_incremental_hasher_equals_one_shot() -> None:
    for algorithm in ALGORITHMS:
        hasher = new_hasher(algorithm)
        for chunk in (b"a", b"bc", b"", b"d" * 10_000):
            hasher.update(chunk)
        expected = Digest.compute(b"abc" + b"d" * 10_000, algorithm)
        assert Digest.from_hasher(algorithm, hasher) == expected


def test_new_hasher_rejects_unknown_algorithm() -> None:
    with pytest.raises(DigestInvalid, match="md5"):
        new_hasher("md5")


def test_equality_and_hash() -> None:
    a = Digest.parse(SHA256_EMPTY)
    b = Digest("sha256", a.hex)
    other = Digest.compute(b"x")
    assert a == b
    assert hash(a) == hash(b)
    assert a != other
    assert len({a, b, other}) == 2
    # Same hex under another algorithm is a different digest.
    assert Digest("blake3", a.hex) != a
    assert a != SHA256_EMPTY  # a string is not a Digest


def test_frozen() -> None:
    d = Digest.parse(SHA256_EMPTY)
    with pytest.raises(AttributeError):
        d.hex = "0" * 64  # type: ignore[misc]


digests = st.sampled_from(sorted(ALGORITHMS)).flatmap(
    lambda alg: st.text("0123456789abcdef", min_size=ALGORITHMS[alg], max_size=ALGORITHMS[alg]).map(
        lambda hex_: f"{alg}:{hex_}"
    )
)


@given(digests)
def test_round_trip(value: str) -> None:
    d = Digest.parse(value)
    assert str(d) == value
    assert Digest.parse(str(d)) == d


@given(st.text(max_size=140))
def test_parse_accepts_only_what_formats_back(value: str) -> None:
    # Whatever parses must print as exactly the input: nothing is normalised,
    # so a digest a client sent is never silently rewritten.
    try:
        d = Digest.parse(value)
    except DigestInvalid:
        return
    assert str(d) == value


@given(st.binary(max_size=2048), st.sampled_from(sorted(ALGORITHMS)))
def test_compute_round_trip(data: bytes, algorithm: str) -> None:
    d = Digest.compute(data, algorithm)
    assert Digest.parse(str(d)) == d
