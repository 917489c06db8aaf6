"""The OCI spec kernel: digests, names, media types, manifests, canonical CBOR, errors.

Pure: no I/O and no framework imports, so ``storage``, ``registry`` and
``conformance`` (and any script) can share one reading of the specs.
The submodules ``oci.cbor`` and ``oci.mediatype`` are used by name
(``cbor.encode``, ``mediatype.OCI_MANIFEST``) because their members read
badly out of context.
"""

from __future__ import annotations

from oci import cbor, mediatype
from oci.digest import ALGORITHMS, Digest, Hasher, new_hasher
from oci.errors import (
    BackendUnavailable,
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    Corruption,
    Denied,
    DigestInvalid,
    ErrorCode,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    OperationalError,
    PaginationNumberInvalid,
    RangeNotSatisfiable,
    RegistryError,
    SizeInvalid,
    SpecError,
    TagInvalid,
    TooManyRequests,
    Unauthorized,
    Unsupported,
)
from oci.manifest import Descriptor, Manifest, parse_manifest
from oci.reference import Reference, is_digest_reference, validate_repository, validate_tag

__all__ = [
    "ALGORITHMS",
    "BackendUnavailable",
    "BlobUnknown",
    "BlobUploadInvalid",
    "BlobUploadUnknown",
    "Corruption",
    "Denied",
    "Descriptor",
    "Digest",
    "DigestInvalid",
    "ErrorCode",
    "Hasher",
    "Manifest",
    "ManifestBlobUnknown",
    "ManifestInvalid",
    "ManifestTooLarge",
    "ManifestUnknown",
    "NameInvalid",
    "NameUnknown",
    "OperationalError",
    "PaginationNumberInvalid",
    "RangeNotSatisfiable",
    "Reference",
    "RegistryError",
    "SizeInvalid",
    "SpecError",
    "TagInvalid",
    "TooManyRequests",
    "Unauthorized",
    "Unsupported",
    "cbor",
    "is_digest_reference",
    "mediatype",
    "new_hasher",
    "parse_manifest",
    "validate_repository",
    "validate_tag",
]
