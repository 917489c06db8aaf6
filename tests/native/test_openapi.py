"""schemathesis against a served process: the /api/v1/ contract holds for generated requests.

Checks: no 5xx, documented status codes and content types, bodies valid
against their schemas. Acceptance of "valid" data is not checked: most
generated names and versions do not exist, and 404 is the right answer.
"""

from __future__ import annotations

from typing import Any

import cbor2
import hypothesis
import schemathesis
from schemathesis import checks

from oci import native
from registry.http.apidoc import OPENAPI

schema = schemathesis.openapi.from_dict(OPENAPI)


@schemathesis.serializer(native.NATIVE_MANIFEST_CBOR)
def _cbor(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    # Generated documents in RFC 8949 core deterministic encoding, so that
    # some get past the canonical-form check and reach deeper validation.
    return bytes(cbor2.dumps(value, canonical=True))


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_api_conforms(case: schemathesis.Case[Any], served: str) -> None:
    case.call_and_validate(base_url=served, checks=CHECKS)
