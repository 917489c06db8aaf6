"""Content digests: ``algorithm ":" encoded``.

Grammar (image-spec descriptor.md, "Digests"):
https://github.com/opencontainers/image-spec/blob/v1.1.0/descriptor.md#digests

    digest                ::= algorithm ":" encoded
    algorithm             ::= algorithm-component (algorithm-separator algorithm-component)*
    algorithm-component   ::= [a-z0-9]+
    algorithm-separator   ::= [+._-]
    encoded               ::= [a-zA-Z0-9=_-]+

The grammar admits far more than we can verify. We accept only the
algorithms we can compute, each with its exact length of lower-case hex, as
the registered algorithms require ("sha256" and "sha512": /[a-f0-9]{64}/ and
/[a-f0-9]{128}/). ``blake3`` is artifact-store's second digest of every blob.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Protocol

import blake3 as _blake3

from oci.errors import DigestInvalid

__all__ = ["ALGORITHMS", "Digest", "Hasher", "new_hasher"]

# algorithm -> length of its lower-case hex encoding
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128, "blake3": 64}

_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX = re.compile(r"[a-f0-9]+")


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


def new_hasher(algorithm: str) -> Hasher:
    """A fresh incremental hasher for one of ALGORITHMS."""
    if algorithm == "blake3":
        # max_threads lets blake3 use several cores on large updates.
        hasher: Hasher = _blake3.blake3(max_threads=_blake3.blake3.AUTO)
        return hasher
    if algorithm in ("sha256", "sha512"):
        return hashlib.new(algorithm)
    raise DigestInvalid(
        f"unsupported digest algorithm {algorithm!r}", detail={"algorithm": algorithm}
    )


@dataclass(frozen=True, slots=True, eq=False)
class Digest:
    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        expected = ALGORITHMS.get(self.algorithm)
        if expected is None:
            raise DigestInvalid(
                f"unsupported digest algorithm {self.algorithm!r} in "
                f"{f'{self.algorithm}:{self.hex}'!r}; supported: {', '.join(ALGORITHMS)}",
                detail={"digest": f"{self.algorithm}:{self.hex}"},
            )
        if len(self.hex) != expected or not _HEX.fullmatch(self.hex):
            raise DigestInvalid(
                f"invalid {self.algorithm} digest {f'{self.algorithm}:{self.hex}'!r}: "
                f"expected {expected} lower-case hex characters",
                detail={"digest": f"{self.algorithm}:{self.hex}"},
            )

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse ``algorithm:hex``; raises DigestInvalid naming the value."""
        if not isinstance(value, str) or not _GRAMMAR.fullmatch(value):
            raise DigestInvalid(f"invalid digest {value!r}", detail={"digest": str(value)[:200]})
        algorithm, _, encoded = value.partition(":")
        return cls(algorithm, encoded)

    @classmethod
    def compute(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        hasher = new_hasher(algorithm)
        hasher.update(data)
        return cls(algorithm, hasher.hexdigest())

    @classmethod
    def from_hasher(cls, algorithm: str, hasher: Hasher) -> Digest:
        return cls(algorithm, hasher.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def __repr__(self) -> str:
        return f"Digest({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        # Constant time: a digest a client sent is compared with one we computed.
        return self.algorithm == other.algorithm and hmac.compare_digest(self.hex, other.hex)

    def __hash__(self) -> int:
        return hash((self.algorithm, self.hex))
