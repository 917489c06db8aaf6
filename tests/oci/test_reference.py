"""Repository names, tags and full references."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from oci.digest import Digest
from oci.errors import DigestInvalid, ErrorCode, NameInvalid, TagInvalid
from oci.reference import (
    DOMAIN,
    NAME_MAX_LENGTH,
    Reference,
    is_digest_reference,
    validate_repository,
    validate_tag,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "library/alpine",
        "a/b/c/d/e",
        "foo.bar",
        "foo_bar",
        "foo__bar",
        "foo-bar",
        "foo---bar",
        "0/1",
        "a" * NAME_MAX_LENGTH,
        "x/" * 126 + "abc",  # 255 characters
    ],
)
def test_valid_repository_names(name: str) -> None:
    assert validate_repository(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Library/alpine",
        "foo/",
        "/foo",
        "foo//bar",
        "foo..bar",
        "foo___bar",
        "foo._bar",
        "-foo",
        "foo-",
        "foo_",
        ".foo",
        "foo bar",
        "foo:bar",
        "foo@bar",
        "../etc",
        "foo/../bar",
        "ﬀoo",
        "foo\n",
        "a" * (NAME_MAX_LENGTH + 1),
        "x/" * 127 + "ab",  # 256 characters, every component valid
    ],
)
def test_invalid_repository_names(name: str) -> None:
    with pytest.raises(NameInvalid) as info:
        validate_repository(name)
    assert info.value.code is ErrorCode.NAME_INVALID
    assert info.value.detail == {"name": name}
    if name and len(name) <= 40:
        assert repr(name) in info.value.message


@pytest.mark.parametrize("tag", ["latest", "v1.0.0", "_x", "A-b_c.d", "1", "a" * 128])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag", ["", ".x", "-x", "a" * 129, "a:b", "a/b", "a b", "ü", "v1\n", "sha256:" + "a" * 64]
)
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(TagInvalid) as info:
        validate_tag(tag)
    assert info.value.code is ErrorCode.TAG_INVALID
    assert repr(tag)[:30] in info.value.message


def test_is_digest_reference() -> None:
    assert is_digest_reference(DIGEST)
    assert is_digest_reference("sha256:abc")  # malformed digest, still meant as one
    assert not is_digest_reference("latest")
    assert not is_digest_reference("sha256-" + "ab" * 32 + ".sig")  # cosign's tag scheme


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", None, "alpine", None, None),
        ("alpine:3.20", None, "alpine", "3.20", None),
        ("library/alpine", None, "library/alpine", None, None),
        ("docker.io/library/alpine:3", "docker.io", "library/alpine", "3", None),
        ("localhost/foo", "localhost", "foo", None, None),
        ("localhost:5000/foo:bar", "localhost:5000", "foo", "bar", None),
        ("localhost:5000", None, "localhost", "5000", None),  # docker reads it so too
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", None, None),
        ("[::1]:5000/a", "[::1]:5000", "a", None, None),
        ("Registry/foo", "Registry", "foo", None, None),  # upper case: a host
        ("foo.bar/baz", "foo.bar", "baz", None, None),
        ("a/b.c/d", None, "a/b.c/d", None, None),  # only the first component may be a host
        ("a/b.c/d:1.0", None, "a/b.c/d", "1.0", None),
        (f"ghcr.io/o/r@{DIGEST}", "ghcr.io", "o/r", None, DIGEST),
        (f"ghcr.io:443/o/r:v1@{DIGEST}", "ghcr.io:443", "o/r", "v1", DIGEST),
        (f"r@{DIGEST}", None, "r", None, DIGEST),
    ],
)
def test_parse(
    text: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert ref.digest == (Digest.parse(digest) if digest else None)
    assert str(ref) == text


def test_reference_property_prefers_digest() -> None:
    assert Reference.parse(f"h.io/r:v1@{DIGEST}").reference == DIGEST
    assert Reference.parse("h.io/r:v1").reference == "v1"
    assert Reference.parse("h.io/r").reference is None
    assert Reference.parse("h.io/r:v1").name == "h.io/r"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", NameInvalid),
        (":tag", NameInvalid),
        ("UPPER", NameInvalid),
        ("host.io/Upper", NameInvalid),
        ("host.io/", NameInvalid),
        ("-bad.io/foo", NameInvalid),
        ("host.io:port/foo", NameInvalid),
        ("host.io/foo:", TagInvalid),
        ("host.io/foo:.bad", TagInvalid),
        ("host.io/foo@sha256:../..", DigestInvalid),
        ("host.io/foo@md5:d41d8cd98f00b204e9800998ecf8427e", DigestInvalid),
        ("host.io/foo@", DigestInvalid),
        ("h.io/" + "a" * (NAME_MAX_LENGTH - 4), NameInvalid),  # host/name over 255
    ],
)
def test_parse_rejects(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        Reference.parse(text)


def test_full_name_limit_counts_the_host() -> None:
    name = "a" * (NAME_MAX_LENGTH - len("h.io/"))
    assert Reference.parse(f"h.io/{name}").repository == name
    with pytest.raises(NameInvalid, match="256 characters"):
        Reference.parse(f"h.io/{name}a")


def test_constructor_refuses_ambiguous_parts() -> None:
    # Printed without a registry, "foo.bar/baz" would read back as host foo.bar.
    with pytest.raises(NameInvalid, match="ambiguous"):
        Reference(None, "foo.bar/baz")
    # Printed, "registry/foo" would read back as the repository "registry/foo".
    with pytest.raises(NameInvalid, match="read as part of the repository"):
        Reference("registry", "foo")
    assert str(Reference("h.io", "foo.bar/baz")) == "h.io/foo.bar/baz"


# -- properties -----------------------------------------------------------------

# The grammars again, copied from the spec text rather than imported, so a
# typo in oci/reference.py cannot hide behind the same typo here.
# https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
SPEC_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
SPEC_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"

# The spec's component grammar with its repetitions bounded, so examples stay
# short and generation quick; the unbounded forms are covered by the
# agreement tests below, which check arbitrary text against SPEC_COMPONENT.
components = st.from_regex(r"[a-z0-9]{1,8}((\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}", fullmatch=True)
repositories = st.lists(components, min_size=1, max_size=6).map("/".join)
tags = st.from_regex(SPEC_TAG, fullmatch=True)
hosts = st.from_regex(DOMAIN, fullmatch=True).filter(lambda s: len(s) <= 60)
digests = st.sampled_from(["sha256", "blake3", "sha512"]).flatmap(
    lambda alg: st.binary(max_size=64).map(lambda b: Digest.compute(b, alg))
)


@given(repositories)
def test_spec_grammar_names_validate(name: str) -> None:
    assert validate_repository(name) == name


@given(tags)
def test_spec_grammar_tags_validate(tag: str) -> None:
    assert validate_tag(tag) == tag


@given(st.text(max_size=140) | tags)
def test_validate_tag_agrees_with_the_grammar(tag: str) -> None:
    try:
        validate_tag(tag)
    except TagInvalid:
        assert re.fullmatch(SPEC_TAG, tag) is None
    else:
        assert re.fullmatch(SPEC_TAG, tag) is not None


@given(st.text(max_size=300) | repositories)
def test_validate_repository_agrees_with_the_grammar(name: str) -> None:
    spec = rf"{SPEC_COMPONENT}(\/{SPEC_COMPONENT})*"
    matches = re.fullmatch(spec, name) is not None and len(name) <= NAME_MAX_LENGTH
    try:
        validate_repository(name)
    except NameInvalid:
        assert not matches
    else:
        assert matches


@given(
    st.none() | hosts,
    repositories,
    st.none() | tags,
    st.none() | digests,
)
def test_format_parse_round_trip(
    registry: str | None, repository: str, tag: str | None, digest: Digest | None
) -> None:
    try:
        ref = Reference(registry, repository, tag, digest)
    except NameInvalid:
        # Only the host/name length limit and the two ambiguity rules refuse
        # parts that each match their grammar.
        assume(False)
        return
    assert Reference.parse(str(ref)) == ref


@given(st.text(alphabet="abcAB01.:/@-_[]", max_size=60))
def test_parse_then_format_is_identity(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except (NameInvalid, TagInvalid, DigestInvalid):
        return
    assert str(ref) == text
