from __future__ import annotations

import base64

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci.digest import Digest
from oci.errors import Corruption
from registry.meta.events import (
    EVENT_TYPES,
    BlobCommitted,
    BlobDeleted,
    BlobMounted,
    BlobUnlinked,
    Event,
    HoldPlaced,
    HoldReleased,
    ManifestDeleted,
    ManifestPulled,
    ManifestPut,
    ManifestReference,
    RetentionExtended,
    TagDeleted,
    TagOverridden,
    UploadEnded,
    UploadProgressed,
    UploadStarted,
    decode,
    encode_payload,
    to_json,
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._/", min_size=1, max_size=20)
digests = st.sampled_from(["sha256", "blake3", "sha512"]).flatmap(
    lambda algorithm: st.binary(min_size=1, max_size=8).map(
        lambda data: Digest.compute(data, algorithm)
    )
)
references = st.builds(ManifestReference, st.sampled_from(["config", "layer", "manifest"]), digests)
any_event: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        BlobCommitted,
        names,
        digests,
        digests,
        st.integers(0, 2**62),
        st.none() | digests,
    ),
    st.builds(BlobMounted, names, digests, names),
    st.builds(BlobUnlinked, names, digests),
    st.builds(
        ManifestPut,
        names,
        digests,
        names,
        st.binary(max_size=64),
        st.lists(names, max_size=3).map(tuple),
        st.none() | names,
        st.none() | digests,
        st.dictionaries(names, st.text(max_size=10), max_size=3),
        st.lists(references, max_size=4).map(tuple),
        st.none() | names,
        st.none() | st.just("2030-01-01T00:00:00+00:00"),
    ),
    st.builds(ManifestDeleted, names, digests),
    st.builds(ManifestPulled, names, digests),
    st.builds(BlobDeleted, digests, st.integers(0, 2**62)),
    st.builds(HoldPlaced, names, names, st.none() | digests, st.none() | names, names, names),
    st.builds(HoldReleased, names, names, st.text(max_size=10)),
    st.builds(RetentionExtended, names, digests, st.just("2031-05-06T07:08:09+00:00")),
    st.builds(TagOverridden, names, names, st.sampled_from(["move", "delete"]), names),
    st.builds(TagDeleted, names, names),
    st.builds(UploadStarted, names, names),
    st.builds(UploadProgressed, names, names, st.integers(0, 2**62)),
    st.builds(UploadEnded, names, names, st.sampled_from(["completed", "cancelled", "expired"])),
)


@given(any_event)
def test_every_event_round_trips_through_its_payload(event: Event) -> None:
    assert decode(event.TYPE, encode_payload(event)) == event


@given(any_event)
def test_payload_is_canonical_cbor(event: Event) -> None:
    payload = encode_payload(event)
    # Re-encoding the decoded map canonically gives the same bytes: one event, one encoding.
    assert cbor2.dumps(cbor2.loads(payload), canonical=True) == payload


def test_every_type_is_covered() -> None:
    assert {
        "blob.committed",
        "blob.mounted",
        "blob.unlinked",
        "manifest.put",
        "manifest.deleted",
        "tag.deleted",
        "upload.started",
        "upload.progressed",
        "upload.ended",
        "manifest.pulled",
        "blob.deleted",
        "hold.placed",
        "hold.released",
        "retention.extended",
        "tag.overridden",
    } == EVENT_TYPES


def test_payload_written_before_a_field_existed_still_decodes() -> None:
    # manifest.put gained its retention fields after logs were written; an old
    # payload lacks them and reads back with their defaults.
    digest = Digest.compute(b"m")
    old = {
        "repository": "r",
        "digest": str(digest),
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "body": b"{}",
        "tags": ["v1"],
        "artifact_type": None,
        "subject": None,
        "annotations": {},
        "references": [],
    }
    event = decode("manifest.put", cbor2.dumps(old, canonical=True))
    assert isinstance(event, ManifestPut)
    assert (event.retention_class, event.retain_until) == (None, None)
    # A field without a default is still required.
    del old["tags"]
    with pytest.raises(Corruption, match="missing fields"):
        decode("manifest.put", cbor2.dumps(old, canonical=True))


def test_unknown_type_is_corruption() -> None:
    with pytest.raises(Corruption, match="unknown event type"):
        decode("blob.vanished", encode_payload(TagDeleted("r", "t")))


@pytest.mark.parametrize(
    "payload",
    [
        cbor2.dumps({"repository": "r"}, canonical=True),
        cbor2.dumps({"repository": "r", "tag": 5}, canonical=True),
        cbor2.dumps({"repository": "r", "tag": "t", "extra": 1}, canonical=True),
        cbor2.dumps(["r", "t"], canonical=True),
        b"\xff",
    ],
)
def test_malformed_payload_is_corruption(payload: bytes) -> None:
    with pytest.raises(Corruption, match="unreadable tag.deleted"):
        decode("tag.deleted", payload)


def test_non_canonical_payload_is_corruption() -> None:
    # The same map with its keys in insertion order; canonical order puts the
    # shorter key first (RFC 8949 §4.2.1). One event must have one encoding.
    payload = cbor2.dumps({"repository": "r", "tag": "t"})
    assert payload != encode_payload(TagDeleted("r", "t"))
    assert cbor2.loads(payload) == {"repository": "r", "tag": "t"}
    with pytest.raises(Corruption, match="non-canonical"):
        decode("tag.deleted", payload)


def test_bad_digest_in_payload_is_corruption() -> None:
    payload = cbor2.dumps({"repository": "r", "digest": "sha256:nothex"}, canonical=True)
    with pytest.raises(Corruption):
        decode("manifest.deleted", payload)


def test_to_json_is_plain_data() -> None:
    digest = Digest.compute(b"m")
    layer = Digest.compute(b"l", "blake3")
    event = ManifestPut(
        "r",
        digest,
        "application/vnd.oci.image.manifest.v1+json",
        b"{}",
        ("v1",),
        None,
        None,
        {"a": "b"},
        (ManifestReference("layer", layer),),
    )
    assert to_json(event) == {
        "type": "manifest.put",
        "repository": "r",
        "digest": str(digest),
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "body": base64.b64encode(b"{}").decode(),
        "tags": ["v1"],
        "artifact_type": None,
        "subject": None,
        "annotations": {"a": "b"},
        "references": [{"kind": "layer", "digest": str(layer)}],
        "retention_class": None,
        "retain_until": None,
    }
