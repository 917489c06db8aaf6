"""The suite catches violations: distribution behind a proxy that breaks one thing at a time.

Each case runs a few checks through ``BreakingProxy`` in process (the
ASGITransport path artifact-store's own run uses) and expects exactly the
statuses listed. The "intact" case shows the same checks pass through the
unbroken proxy, so each failure below is the fault's doing.
"""

from __future__ import annotations

import json

import httpx
import pytest

from conformance import Status, run_checks
from tests.conformance.peer import Answer, BreakingProxy, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.clients]

P, F = Status.PASS, Status.FAIL


def intact(answer: Answer) -> None:
    pass


def compact_manifests(answer: Answer) -> None:
    if answer.method == "GET" and "/manifests/" in answer.path and answer.status == 200:
        answer.body = json.dumps(json.loads(answer.body)).encode()


def drop_upload_location(answer: Answer) -> None:
    if answer.method == "POST" and answer.path.endswith("/blobs/uploads/"):
        answer.headers = [(k, v) for k, v in answer.headers if k.lower() != "location"]


def plain_text_errors(answer: Answer) -> None:
    if answer.status >= 400:
        answer.body = b"something went wrong"
        answer.headers = [(k, v) for k, v in answer.headers if k.lower() != "content-type"]


def fake_empty_referrers(answer: Answer) -> None:
    if "/referrers/" in answer.path:
        answer.status = 200
        answer.headers = [("Content-Type", "application/vnd.oci.image.index.v1+json")]
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
        answer.body = json.dumps(index | {"manifests": []}).encode()


def shifted_ranges(answer: Answer) -> None:
    if answer.status == 206:
        answer.body = answer.body[1:] + b"\0"


def wrong_blob_digest(answer: Answer) -> None:
    if "/blobs/sha256:" in answer.path:
        zero = "sha256:" + "0" * 64
        answer.headers = [
            (k, zero if k.lower() == "docker-content-digest" else v) for k, v in answer.headers
        ]


def upload_range_off_by_one(answer: Answer) -> None:
    if answer.method == "GET" and "/blobs/uploads/" in answer.path and answer.status == 204:
        answer.headers = [(k, "0-0" if k.lower() == "range" else v) for k, v in answer.headers]


CASES: list[tuple[Fault, dict[str, Status]]] = [
    (
        intact,
        {
            "manifest_get_by_tag": P,
            "blob_post_then_put": P,
            "blob_unknown": P,
            "blob_get": P,
            "blob_range": P,
            "upload_status": P,
            "error_bodies": P,
        },
    ),
    (compact_manifests, {"manifest_get_by_tag": F, "manifest_get_by_digest": F}),
    (
        drop_upload_location,
        {"blob_post_then_put": F, "blob_chunked": F, "blob_get": Status.SKIPPED},
    ),
    (plain_text_errors, {"blob_unknown": F, "manifest_unknown": F, "error_bodies": F}),
    (
        fake_empty_referrers,
        {"referrers_list": F, "oci_subject_header": F, "referrers_unknown_subject": P},
    ),
    (shifted_ranges, {"blob_range": F, "blob_range_open_ended": F}),
    (wrong_blob_digest, {"blob_get": F, "blob_head": F}),
    (upload_range_off_by_one, {"upload_status": F}),
]


@pytest.mark.parametrize(("fault", "expected"), CASES, ids=[f.__name__ for f, _ in CASES])
async def test_suite_catches_fault(
    distribution_url: str, fault: Fault, expected: dict[str, Status]
) -> None:
    proxy = BreakingProxy(distribution_url, fault)

    def in_process(url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url=url)

    try:
        results = await run_checks(
            "http://registry.test", client_factory=in_process, names=list(expected)
        )
    finally:
        await proxy.aclose()
    got = {r.name: r.status for r in results}
    assert got == expected, {r.name: r.message for r in results}
