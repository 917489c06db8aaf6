"""Tokens an attacker could make, for the denial table."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry.auth import Authority

__all__ = ["claims", "hs256_with_public_key", "signed", "unsigned", "wrong_key"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(
    repo: str = "acme/app", actions: tuple[str, ...] = ("pull",), **over: Any
) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "artifact-store",
        "sub": "alice",
        "aud": "artifact-store",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
        "access": [{"type": "repository", "name": repo, "actions": list(actions)}],
        "kind": "user",
        "tenant": "acme",
        "roles": ["maintainer"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


async def signed(authority: Authority, body: dict[str, Any]) -> str:
    """Signed with the registry's real key: only the claims are wrong."""
    kid, key = await authority.keys.signing_key()
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})


async def wrong_key(authority: Authority, body: dict[str, Any]) -> str:
    """Claims and kid are right; the signature comes from an attacker's key."""
    kid, _ = await authority.keys.signing_key()
    return jwt.encode(body, ec.generate_private_key(ec.SECP256R1()), "ES256", {"kid": kid})


async def unsigned(authority: Authority, body: dict[str, Any]) -> str:
    kid, _ = await authority.keys.signing_key()
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}."


async def hs256_with_public_key(authority: Authority, body: dict[str, Any]) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the (public) verification key."""
    kid, key = await authority.keys.signing_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"
