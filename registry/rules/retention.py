"""Retention rules a write asks: may retention be extended, what a native artifact keeps."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping

from oci import native
from oci.errors import Denied, ManifestInvalid

__all__ = ["check_retention_extension", "native_retention"]


def check_retention_extension(
    repo: str, digest: str, current: dt.datetime | None, until: dt.datetime
) -> None:
    """Raise DENIED unless ``until`` is later than now and than ``current``.

    So retention is never shortened, and never set into the past.
    """
    if current is not None and until <= current:
        raise Denied(
            f"retention can only be extended: {repo}@{digest} is kept until {current.isoformat()}",
            detail={"reason": "retention", "until": current.isoformat()},
        )
    if until <= dt.datetime.now(dt.UTC):
        raise Denied(
            f"retention can only be extended into the future, not to {until.isoformat()}",
            detail={
                "reason": "retention",
                "until": None if current is None else current.isoformat(),
            },
        )


def native_retention(annotations: Mapping[str, str]) -> dict[str, str | None]:
    """A native artifact's retention, read from the manifest it embeds (else nothing).

    The annotation is only a claim: an OCI client may set it to anything, so
    what is not base64 of a canonical native manifest is not one, and keeps
    nothing.
    """
    embedded = annotations.get(native.ANNOTATION_MANIFEST)
    if embedded is None:
        return {}
    try:
        retention = native.decode_cbor(base64.b64decode(embedded, validate=True)).retention
    except (binascii.Error, ValueError, ManifestInvalid):
        # binascii.Error: not base64; ManifestInvalid: not a canonical native
        # manifest; ValueError: base64 of text that is not ASCII.
        return {}
    if retention is None:
        return {}
    until = None if retention.until is None else retention.until.isoformat()
    return {"retention_class": retention.class_, "retain_until": until}
