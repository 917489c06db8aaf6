"""The registry's own signing keys: generated on first use, rotatable, shared by all processes.

Keys live in the metadata database (``auth_signing_keys``) so that a token
signed by one server process verifies on every other. The newest key that
is not retired signs; every key verifies until ``VERIFY_AFTER_RETIRE`` past
its retirement, which outlasts any token it signed. Each token names its
key in the JWT ``kid`` header, so rotation never breaks tokens in flight.

The private keys are stored unencrypted: whoever can read the metadata
database can already rewrite the registry's content (docs/auth.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import anyio
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registry.auth.tables import audit, signing_keys
from registry.meta.engine import write_transaction

__all__ = ["ALGORITHM", "VERIFY_AFTER_RETIRE", "KeyRing"]

ALGORITHM = "ES256"
VERIFY_AFTER_RETIRE = dt.timedelta(days=31)


def _kid(public: ec.EllipticCurvePublicKey) -> str:
    # distribution's libtrust-style kid is a hash of the public key; any
    # stable, unique string works for JWT, so a short SHA-256 of the DER.
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:32]


def _generate() -> tuple[str, ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _kid(key.public_key()), key, pem


def _load(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


class KeyRing:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._signing: tuple[str, ec.EllipticCurvePrivateKey] | None = None
        self._public: dict[str, ec.EllipticCurvePublicKey] = {}
        self._first_load = anyio.Lock()

    async def _insert(self, conn: AsyncConnection) -> str:
        kid, key, pem = _generate()
        now = dt.datetime.now(dt.UTC)
        await conn.execute(
            signing_keys.insert().values(
                kid=kid, algorithm=ALGORITHM, private_pem=pem, created_at=now, retired_at=None
            )
        )
        self._signing = (kid, key)
        self._public[kid] = key.public_key()
        return kid

    async def signing_key(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The newest active key; the first call on an empty database creates one."""
        if self._signing is not None:
            return self._signing
        query = (
            sa.select(signing_keys.c.kid, signing_keys.c.private_pem)
            .where(signing_keys.c.retired_at.is_(None))
            .order_by(signing_keys.c.created_at.desc())
            .limit(1)
        )
        # One loader per process; the write lock makes concurrent first starts of
        # several processes agree on one key (a read-then-insert would race).
        async with self._first_load:
            if self._signing is not None:
                return self._signing
            async with write_transaction(self._engine) as conn:
                row = (await conn.execute(query)).first()
                if row is None:
                    await self._insert(conn)
                else:
                    key = _load(row.private_pem)
                    self._signing = (row.kid, key)
                    self._public[row.kid] = key.public_key()
        assert self._signing is not None
        return self._signing

    async def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The verifying key for ``kid``; an unknown kid re-reads the database once."""
        found = self._public.get(kid)
        if found is not None:
            return found
        await self._reload()
        return self._public.get(kid)

    async def _reload(self) -> None:
        cutoff = dt.datetime.now(dt.UTC) - VERIFY_AFTER_RETIRE
        query = sa.select(signing_keys).where(
            signing_keys.c.retired_at.is_(None) | (signing_keys.c.retired_at > cutoff)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        self._public = {row.kid: _load(row.private_pem).public_key() for row in rows}
        self._signing = None

    async def rotate(self, *, actor: str) -> str:
        """Retire every active key and start signing with a fresh one; returns its kid."""
        now = dt.datetime.now(dt.UTC)
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                signing_keys.update()
                .where(signing_keys.c.retired_at.is_(None))
                .values(retired_at=now)
            )
            kid = await self._insert(conn)
            await conn.execute(
                audit.insert().values(
                    ts=now, actor=actor, action="key.rotated", target=kid, detail={}
                )
            )
        return kid

    async def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set, for anyone who verifies our tokens offline."""
        await self._reload()
        keys = []
        for kid, public in sorted(self._public.items()):
            jwk = json.loads(ECAlgorithm.to_jwk(public))
            keys.append({**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": keys}
