"""Canonical CBOR: one value, one byte string (ADR-0003).

RFC 8949 §4.2.1, "Core Deterministic Encoding Requirements",
https://www.rfc-editor.org/rfc/rfc8949#section-4.2.1 :

    Preferred serialization MUST be used. In particular, this means that
    arguments (see Section 3) for integers, lengths in major types 2 through
    5, and tags MUST be as short as possible [...] Floating-point values also
    MUST use the shortest form that preserves the value [...]
    Indefinite-length items MUST NOT appear. [...]
    The keys in every map MUST be sorted in the bytewise lexicographic order
    of their deterministic encodings.

and §3.4.3 (bignums): "Preferred serialization of the byte string is to leave
out any leading zeroes" and a value that fits in major type 0 or 1 MUST be
encoded there.

Strategy. cbor2's ``canonical=True`` gets the scalars right (shortest
integers, lengths and floats, minimal bignums) but sorts map keys length
first, the older RFC 7049 §3.9 rule; the two orders differ whenever keys of
different major types meet (``1000`` encodes as ``19 03 e8`` and sorts before
``-1``, ``20``, bytewise, but after it length first). So this module lets cbor2
encode scalars and builds arrays and maps itself, sorting each map's entries
by their encoded keys.

The data model is deliberately JSON-like: None, bool, int (any size), float,
str, bytes, list/tuple and dict. Anything else (tags, simple values,
datetimes) raises TypeError on encode and is rejected on decode, so a
decoded manifest is always plain data that encodes back to the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

from oci.errors import ManifestInvalid

__all__ = ["decode_canonical", "encode"]

_MAJOR_ARRAY = 4
_MAJOR_MAP = 5


def _head(major: int, argument: int) -> bytes:
    """The initial byte and shortest argument of a data item (RFC 8949 §3)."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * width):
            return bytes([major << 5 | info]) + argument.to_bytes(width, "big")
    raise ValueError(f"length {argument} does not fit in a CBOR argument")


def _encode(value: Any, out: list[bytes]) -> None:
    # bool before int: bool is an int subclass, and cbor2 gives it f4/f5 anyway.
    if value is None or isinstance(value, bool | int | float | str | bytes):
        out.append(cbor2.dumps(value, canonical=True))
    elif isinstance(value, list | tuple):
        out.append(_head(_MAJOR_ARRAY, len(value)))
        for item in value:
            _encode(item, out)
    elif isinstance(value, Mapping):
        entries: list[tuple[bytes, bytes]] = []
        for key, item in value.items():
            entries.append((encode(key), encode(item)))
        entries.sort(key=lambda entry: entry[0])
        for (previous, _), (key, _) in zip(entries, entries[1:], strict=False):
            if previous == key:
                raise ValueError(f"two map keys encode to the same bytes {key.hex()}")
        out.append(_head(_MAJOR_MAP, len(entries)))
        for key, item in entries:
            out.append(key)
            out.append(item)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as canonical CBOR")


def encode(value: Any) -> bytes:
    """The RFC 8949 §4.2.1 deterministic encoding of ``value``.

    Raises TypeError for a value outside the data model (see the module docstring).
    """
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def decode_canonical(data: bytes) -> Any:
    """Decode one CBOR item that must already be in canonical form.

    Re-encoding and comparing catches every non-canonical choice at once:
    long-form integers and lengths, wide floats, unsorted or duplicate keys,
    padded bignums, tags. Indefinite lengths and duplicate keys are refused
    by the decoder itself, which gives a more precise message. Raises
    ManifestInvalid saying what was wrong.
    """
    try:
        value = cbor2.loads(bytes(data), allow_indefinite=False, allow_duplicate_keys=False)
    except (cbor2.CBORError, ValueError, OverflowError, RecursionError) as exc:
        raise ManifestInvalid(f"not valid CBOR: {exc}", detail={"reason": str(exc)}) from None
    try:
        again = encode(value)
    except (TypeError, ValueError) as exc:
        raise ManifestInvalid(
            f"non-canonical CBOR: item outside the data model ({exc})",
            detail={"reason": str(exc)},
        ) from None
    if again != data:
        if len(again) < len(data) and data.startswith(again):
            reason = f"{len(data) - len(again)} trailing bytes after the CBOR item"
        else:
            reason = f"bytes differ from the canonical encoding at offset {_mismatch(again, data)}"
        raise ManifestInvalid(
            f"non-canonical CBOR (RFC 8949 §4.2.1): {reason}", detail={"reason": reason}
        )
    return value


def _mismatch(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
