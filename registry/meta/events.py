"""The event log's vocabulary, and the one module that encodes it.

Every change to the registry's metadata is one of the frozen dataclasses
below. ``MetadataStore`` appends it to the ``events`` table and hands it to
the projector, which is the only code that writes the views; replaying the
log through the same projector therefore rebuilds the views exactly
(ADR-0002). An event carries every fact its projection needs, including
what was derived from a manifest at push time (references, subject,
artifactType), so replay never depends on how today's parser would read an
old body.

Wire form: the ``type`` column holds ``Event.TYPE``; the ``payload`` column
holds canonical CBOR (RFC 8949 §4.2.1) of a map from field name to value,
digests as their ``algorithm:hex`` strings. One encoding means one byte
string per event, which is what lets consumers compare or hash them.
"""

from __future__ import annotations

import base64
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from oci.cbor import decode_canonical, encode
from oci.digest import Digest
from oci.errors import Corruption

__all__ = [
    "EVENT_TYPES",
    "BlobCommitted",
    "BlobMounted",
    "BlobDeleted",
    "BlobUnlinked",
    "Event",
    "HoldPlaced",
    "HoldReleased",
    "ManifestDeleted",
    "ManifestPulled",
    "ManifestPut",
    "ManifestReference",
    "ReferenceKind",
    "RetentionExtended",
    "TagDeleted",
    "TagOverridden",
    "UploadEndReason",
    "UploadEnded",
    "UploadProgressed",
    "UploadStarted",
    "decode",
    "encode_payload",
    "to_json",
]

ReferenceKind = Literal["config", "layer", "manifest"]
UploadEndReason = Literal["completed", "cancelled", "expired"]


@dataclass(frozen=True, slots=True)
class ManifestReference:
    """One descriptor a manifest points at (its subject excluded)."""

    kind: ReferenceKind
    digest: Digest


@dataclass(frozen=True, slots=True)
class BlobCommitted:
    """A blob's bytes were stored and linked into ``repository``."""

    TYPE: ClassVar[str] = "blob.committed"
    repository: str
    sha256: Digest
    blake3: Digest
    size: int
    sha512: Digest | None = None


@dataclass(frozen=True, slots=True)
class BlobMounted:
    """A blob already linked in ``from_repository`` was linked into ``repository``."""

    TYPE: ClassVar[str] = "blob.mounted"
    repository: str
    sha256: Digest
    from_repository: str


@dataclass(frozen=True, slots=True)
class BlobUnlinked:
    """``repository`` no longer holds the blob; its bytes stay until GC."""

    TYPE: ClassVar[str] = "blob.unlinked"
    repository: str
    sha256: Digest


@dataclass(frozen=True, slots=True)
class ManifestPut:
    """A manifest was stored; each of ``tags`` now points at it.

    Tag moves are not a separate event: in the distribution spec a tag only
    ever moves by pushing a manifest under it, so the put says it all.
    """

    TYPE: ClassVar[str] = "manifest.put"
    repository: str
    digest: Digest
    media_type: str
    body: bytes
    tags: tuple[str, ...]
    artifact_type: str | None
    subject: Digest | None
    annotations: dict[str, str]
    references: tuple[ManifestReference, ...]
    # A native artifact's own retention (class, and an RFC 3339 date or None),
    # read from its manifest at push time. Absent in events written before it existed.
    retention_class: str | None = None
    retain_until: str | None = None


@dataclass(frozen=True, slots=True)
class ManifestDeleted:
    """The manifest and every tag pointing at it are gone."""

    TYPE: ClassVar[str] = "manifest.deleted"
    repository: str
    digest: Digest


@dataclass(frozen=True, slots=True)
class TagDeleted:
    TYPE: ClassVar[str] = "tag.deleted"
    repository: str
    tag: str


@dataclass(frozen=True, slots=True)
class ManifestPulled:
    """The manifest was pulled at least once since the last such event (coalesced)."""

    TYPE: ClassVar[str] = "manifest.pulled"
    repository: str
    digest: Digest


@dataclass(frozen=True, slots=True)
class BlobDeleted:
    """Garbage collection removed the blob's bytes; no repository held it."""

    TYPE: ClassVar[str] = "blob.deleted"
    sha256: Digest
    size: int
    # Blobs live outside any one repository; the log's repository column is NULL.
    repository: None = None


@dataclass(frozen=True, slots=True)
class HoldPlaced:
    """A legal hold: ``digest`` None holds the whole repository; ``tag`` names a held version."""

    TYPE: ClassVar[str] = "hold.placed"
    repository: str
    hold_id: str
    digest: Digest | None
    tag: str | None
    reason: str
    placed_by: str


@dataclass(frozen=True, slots=True)
class HoldReleased:
    TYPE: ClassVar[str] = "hold.released"
    repository: str
    hold_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RetentionExtended:
    """A manifest's keep-until date moved later (never earlier); RFC 3339 UTC."""

    TYPE: ClassVar[str] = "retention.extended"
    repository: str
    digest: Digest
    until: str


@dataclass(frozen=True, slots=True)
class TagOverridden:
    """An admin moved or deleted an immutable tag; the change itself is the next event."""

    TYPE: ClassVar[str] = "tag.overridden"
    repository: str
    tag: str
    action: Literal["move", "delete"]
    reason: str


@dataclass(frozen=True, slots=True)
class UploadStarted:
    TYPE: ClassVar[str] = "upload.started"
    repository: str
    upload_id: str


@dataclass(frozen=True, slots=True)
class UploadProgressed:
    TYPE: ClassVar[str] = "upload.progressed"
    repository: str
    upload_id: str
    offset: int


@dataclass(frozen=True, slots=True)
class UploadEnded:
    TYPE: ClassVar[str] = "upload.ended"
    repository: str
    upload_id: str
    reason: UploadEndReason


Event = (
    BlobCommitted
    | BlobMounted
    | BlobUnlinked
    | ManifestPut
    | ManifestDeleted
    | TagDeleted
    | UploadStarted
    | UploadProgressed
    | UploadEnded
    | ManifestPulled
    | BlobDeleted
    | HoldPlaced
    | HoldReleased
    | RetentionExtended
    | TagOverridden
)

_CLASSES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        BlobCommitted,
        BlobMounted,
        BlobUnlinked,
        ManifestPut,
        ManifestDeleted,
        TagDeleted,
        UploadStarted,
        UploadProgressed,
        UploadEnded,
        ManifestPulled,
        BlobDeleted,
        HoldPlaced,
        HoldReleased,
        RetentionExtended,
        TagOverridden,
    )
}
EVENT_TYPES: frozenset[str] = frozenset(_CLASSES)


def _to_plain(value: object) -> Any:
    """Field value -> CBOR-ready value (digests become strings)."""
    if isinstance(value, Digest):
        return str(value)
    if isinstance(value, ManifestReference):
        return [value.kind, str(value.digest)]
    if isinstance(value, tuple):
        return [_to_plain(item) for item in value]
    return value


def _from_plain(hint: object, value: Any) -> Any:
    """CBOR value -> field value, checked against the field's type hint."""
    if hint is Digest:
        return Digest.parse(value)
    if hint == Digest | None:
        return None if value is None else Digest.parse(value)
    if hint == tuple[str, ...]:
        return tuple(_checked(str, item) for item in value)
    if hint == tuple[ManifestReference, ...]:
        return tuple(ManifestReference(kind, Digest.parse(digest)) for kind, digest in value)
    if hint == dict[str, str]:
        return {_checked(str, k): _checked(str, v) for k, v in _checked(dict, value).items()}
    if hint == str | None:
        return None if value is None else _checked(str, value)
    if hint is None or hint is type(None):
        if value is not None:
            raise TypeError(f"expected null, got {value!r}")
        return None
    if hint in (str, int, bytes):
        return _checked(typing.cast(type, hint), value)
    # A Literal: the value must be one of its members.
    if typing.get_origin(hint) is Literal and value in typing.get_args(hint):
        return value
    raise TypeError(f"unexpected value {value!r} for {hint!r}")


def _checked(kind: type, value: Any) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _field_hints(cls: type[Event]) -> dict[str, object]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


# Field name -> resolved type hint, per event class, in declaration order.
_HINTS: dict[str, dict[str, object]] = {
    event_type: _field_hints(cls) for event_type, cls in _CLASSES.items()
}


# Fields added after events of a type were first written carry a default and
# may be absent from old payloads; every other field must be present.
_DEFAULTED: dict[str, frozenset[str]] = {
    event_type: frozenset(
        field.name for field in dataclasses.fields(cls) if field.default is not dataclasses.MISSING
    )
    for event_type, cls in _CLASSES.items()
}


def _hints(cls: type[Event]) -> dict[str, object]:
    return _HINTS[cls.TYPE]


def encode_payload(event: Event) -> bytes:
    """The canonical CBOR bytes stored in ``events.payload``."""
    return encode({name: _to_plain(getattr(event, name)) for name in _hints(type(event))})


def decode(event_type: str, payload: bytes) -> Event:
    """Rebuild the event a row holds; a row we cannot read is corruption, not a client error."""
    cls = _CLASSES.get(event_type)
    if cls is None:
        raise Corruption(f"event log holds an unknown event type {event_type!r}")
    try:
        data = decode_canonical(payload)
        hints = _hints(cls)
        if not isinstance(data, dict) or not set(data) <= set(hints):
            raise TypeError(f"fields {sorted(data) if isinstance(data, dict) else data!r}")
        if missing := set(hints) - set(data) - _DEFAULTED[event_type]:
            raise TypeError(f"missing fields {sorted(missing)}")
        return cls(**{name: _from_plain(hints[name], value) for name, value in data.items()})
    except Exception as exc:  # whatever the decoder or a field check raised, the row is bad
        raise Corruption(f"unreadable {event_type} event payload: {exc}") from exc


def to_json(event: Event) -> dict[str, Any]:
    """A JSON-ready rendering for the events API and the outbox (bytes as base64)."""
    out: dict[str, Any] = {"type": event.TYPE}
    for name in _hints(type(event)):
        value = getattr(event, name)
        if isinstance(value, bytes):
            out[name] = base64.b64encode(value).decode("ascii")
        elif name == "references":
            out[name] = [{"kind": ref.kind, "digest": str(ref.digest)} for ref in value]
        else:
            out[name] = _to_plain(value)
    return out
