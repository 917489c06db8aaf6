"""OIDC bearer tokens from a small issuer on loopback, with its own key pair."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.http._oci import push_image

from .conftest import AuthServed

pytestmark = pytest.mark.anyio


@dataclass
class Issuer:
    url: str = ""
    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    jwks_fetches: int = 0

    def rotate(self) -> str:
        kid = secrets.token_hex(4)
        self.keys = {kid: ec.generate_private_key(ec.SECP256R1())}
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "ES256", "use": "sig"})
        return {"keys": keys}

    def token(self, key: ec.EllipticCurvePrivateKey | None = None, **over: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": "artifact-store",
            "sub": "carol",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "tenant": "acme",
            "roles": ["maintainer"],
        }
        claims.update(over)
        kid = next(iter(self.keys))
        return jwt.encode(claims, key or self.keys[kid], "ES256", {"kid": kid})


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    state = Issuer()
    state.rotate()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": state.url, "jwks_uri": f"{state.url}/jwks"}
            elif self.path == "/jwks":
                state.jwks_fetches += 1
                body = state.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def extra_settings(issuer: Issuer) -> dict[str, object]:
    return {"oidc_issuer": issuer.url, "oidc_audience": "artifact-store"}


async def test_valid_token_maps_claims_to_tenant_and_role(
    authed: AuthServed, issuer: Issuer
) -> None:
    carol = authed.bearer(issuer.token())
    pushed = await push_image(carol, "acme/oidc", "v1")
    assert (await carol.get(f"/v2/acme/oidc/manifests/{pushed.digest}")).status_code == 200
    await push_image(authed.as_user("bob"), "globex/app", "v1")
    assert (await carol.get("/v2/globex/app/manifests/v1")).status_code == 404
    reader = authed.bearer(issuer.token(roles=["reader"]))
    assert (await reader.post("/v2/acme/oidc/blobs/uploads/")).status_code == 403


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"exp": int(time.time()) - 600, "iat": int(time.time()) - 900},
        {"nbf": int(time.time()) + 600},
        {"sub": ""},
    ],
    ids=["wrong-audience", "expired", "not-yet-valid", "no-subject"],
)
async def test_invalid_claims_are_refused(
    authed: AuthServed, issuer: Issuer, claims: dict[str, Any]
) -> None:
    token = issuer.token(**claims)
    response = await authed.bearer(token).get("/v2/acme/app/manifests/v1")
    assert response.status_code == 401


async def test_forged_signature_is_refused(authed: AuthServed, issuer: Issuer) -> None:
    forged = issuer.token(key=ec.generate_private_key(ec.SECP256R1()))
    assert (await authed.bearer(forged).get("/v2/")).status_code == 401
    assert (await authed.bearer(issuer.token()).get("/v2/")).status_code == 200


async def test_issuer_key_rotation_is_followed(authed: AuthServed, issuer: Issuer) -> None:
    assert (await authed.bearer(issuer.token()).get("/v2/")).status_code == 200
    fetches = issuer.jwks_fetches
    await anyio.sleep(1.1)  # the verifier re-fetches at most once a second
    issuer.rotate()
    assert (await authed.bearer(issuer.token()).get("/v2/")).status_code == 200
    assert issuer.jwks_fetches == fetches + 1
