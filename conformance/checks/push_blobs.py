"""Push, blobs: POST+PUT, single POST, chunked PATCH, status, cancel, mount.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-blobs
Every upload is read back by GET, because a 201 alone proves nothing about
what was stored.
"""

from __future__ import annotations

import re

from conformance.checks._registry import check
from conformance.content import Blob, random_blob
from conformance.context import Context
from conformance.result import CheckFailed, NotSupported

OCTETS = {"Content-Type": "application/octet-stream"}
RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")


async def verify_stored(t: Context, repo: str, blob: Blob) -> None:
    response = t.expect(await t.get_following(f"/v2/{repo}/blobs/{blob.digest}"), 200)
    if response.content != blob.data:
        raise CheckFailed(f"blob {blob.digest} reads back different bytes")


def range_end(t: Context, response_range: str) -> int:
    """``Range: 0-<end>`` of an upload; some registries write ``bytes=0-<end>``: accept both."""
    match = RANGE.match(response_range.strip())
    if match is None:
        raise CheckFailed(f"Range header {response_range!r} is not 0-<end-of-range>")
    return int(match.group(1))


async def start(t: Context, repo: str) -> str:
    response = await t.request(
        "POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"}
    )
    t.expect(response, 202, why="POST /blobs/uploads/ opens a session")
    return t.location(response)


@check("push", "#post-then-put")
async def blob_post_then_put(t: Context) -> None:
    """POST opens a session (202 + Location); PUT ?digest= with the body closes it (201)."""
    repo, blob = t.repo("post-put"), random_blob(2048)
    location = await start(t, repo)
    done = await t.request(
        "PUT", location, params={"digest": blob.digest}, headers=OCTETS, content=blob.data
    )
    t.expect(done, 201)
    t.cleanup_later(f"/v2/{repo}/blobs/{blob.digest}")
    t.location(done)
    await verify_stored(t, repo, blob)


@check("push", "#single-post")
async def blob_single_post(t: Context) -> None:
    """POST ?digest= with the body: 201, or 202 + Location when single-POST is not offered."""
    repo, blob = t.repo("single-post"), random_blob(1500)
    response = await t.request(
        "POST",
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": blob.digest},
        headers=OCTETS,
        content=blob.data,
    )
    if response.status_code == 202:
        # The spec's fallback: the client continues with PUT. Close the session.
        await t.request("DELETE", t.location(response))
        raise NotSupported("single-POST upload answered 202 (the spec's fallback to POST+PUT)")
    t.expect(response, 201)
    t.cleanup_later(f"/v2/{repo}/blobs/{blob.digest}")
    t.location(response)
    await verify_stored(t, repo, blob)


@check("push", "#pushing-a-blob-in-chunks")
async def blob_chunked(t: Context) -> None:
    """PATCH chunks with Content-Range (202, Location, Range each time), final chunk in the PUT."""
    repo, blob = t.repo("chunked"), random_blob(3000)
    location = await start(t, repo)
    offset = 0
    for size in (1000, 1200):
        chunk = blob.data[offset : offset + size]
        response = await t.request(
            "PATCH",
            location,
            headers=OCTETS | {"Content-Range": f"{offset}-{offset + size - 1}"},
            content=chunk,
        )
        t.expect(response, 202)
        offset += size
        end = range_end(t, t.header(response, "Range"))
        if end != offset - 1:
            raise CheckFailed(f"after {offset} bytes the Range header says 0-{end}")
        location = t.location(response)
    final = blob.data[offset:]
    done = await t.request(
        "PUT",
        location,
        params={"digest": blob.digest},
        headers=OCTETS | {"Content-Range": f"{offset}-{len(blob.data) - 1}"},
        content=final,
    )
    t.expect(done, 201)
    t.cleanup_later(f"/v2/{repo}/blobs/{blob.digest}")
    await verify_stored(t, repo, blob)


@check("push", "#pushing-a-blob-in-chunks")
async def blob_chunk_out_of_order(t: Context) -> None:
    """A chunk whose range does not start at the current offset: 416."""
    repo, blob = t.repo("out-of-order"), random_blob(2000)
    location = await start(t, repo)
    first = await t.request(
        "PATCH", location, headers=OCTETS | {"Content-Range": "0-999"}, content=blob.data[:1000]
    )
    t.expect(first, 202)
    location = t.location(first)
    skipped = await t.request(
        "PATCH",
        location,
        headers=OCTETS | {"Content-Range": "1500-1999"},
        content=blob.data[1500:],
    )
    t.expect(skipped, 416, why="chunks MUST be uploaded in order")
    await t.request("DELETE", location)


@check("push", "#pushing-a-blob-in-chunks")
async def upload_status(t: Context) -> None:
    """GET on an open upload: 204 with Location and Range 0-<last byte received>."""
    repo, blob = t.repo("upload-status"), random_blob(1000)
    location = await start(t, repo)
    patched = await t.request(
        "PATCH", location, headers=OCTETS | {"Content-Range": "0-599"}, content=blob.data[:600]
    )
    t.expect(patched, 202)
    location = t.location(patched)
    status = t.expect(await t.request("GET", location), 204)
    end = range_end(t, t.header(status, "Range"))
    if end != 599:
        raise CheckFailed(f"600 bytes received but the Range header says 0-{end}")
    location = t.location(status)
    done = await t.request(
        "PUT",
        location,
        params={"digest": blob.digest},
        headers=OCTETS | {"Content-Range": f"600-{len(blob.data) - 1}"},
        content=blob.data[600:],
    )
    t.expect(done, 201)
    t.cleanup_later(f"/v2/{repo}/blobs/{blob.digest}")
    await verify_stored(t, repo, blob)


@check("push", "#pushing-a-blob-in-chunks")
async def upload_cancel(t: Context) -> None:
    """DELETE on an open upload ends it: later GETs answer 404 BLOB_UPLOAD_UNKNOWN.

    Cancelling is Docker Registry API V2 (the spec's apdx-1) rather than a
    numbered endpoint of v1.1, so a 405 counts as not supported.
    """
    repo, blob = t.repo("cancel"), random_blob(800)
    location = await start(t, repo)
    patched = await t.request(
        "PATCH", location, headers=OCTETS | {"Content-Range": "0-399"}, content=blob.data[:400]
    )
    t.expect(patched, 202)
    location = t.location(patched)
    cancelled = await t.request("DELETE", location)
    if cancelled.status_code == 405:
        raise NotSupported("DELETE on an upload session answered 405")
    t.expect(cancelled, 204, 202)
    t.expect_error(await t.request("GET", location), [404], ["BLOB_UPLOAD_UNKNOWN"])


@check("push", "#post-then-put")
async def blob_put_wrong_digest(t: Context) -> None:
    """PUT ?digest= naming other content: 400 DIGEST_INVALID, and nothing is stored."""
    repo, blob, other = t.repo("wrong-digest"), random_blob(900), random_blob(900)
    # A blob in the repository first, so a 404 below means "absent", not "no repository".
    await t.push_blob(repo, random_blob(64))
    location = await start(t, repo)
    response = await t.request(
        "PUT", location, params={"digest": other.digest}, headers=OCTETS, content=blob.data
    )
    t.expect_error(response, [400], ["DIGEST_INVALID"])
    for digest in (other.digest, blob.digest):
        t.expect(await t.request("HEAD", f"/v2/{repo}/blobs/{digest}"), 404, why="not stored")


@check("push", "#mounting-a-blob-from-another-repository")
async def blob_mount(t: Context) -> None:
    """POST ?mount=&from= of a blob in another repository: 201 and readable; 202 is the fallback."""
    source, target, blob = t.repo("mount-from"), t.repo("mount-to"), random_blob(700)
    await t.push_blob(source, blob)
    response = await t.request(
        "POST", f"/v2/{target}/blobs/uploads/", params={"mount": blob.digest, "from": source}
    )
    if response.status_code == 202:
        t.location(response)
        await t.request("DELETE", t.location(response))
        raise NotSupported("mount answered 202: the registry opened an upload instead")
    t.expect(response, 201)
    t.cleanup_later(f"/v2/{target}/blobs/{blob.digest}")
    t.location(response)
    await verify_stored(t, target, blob)


@check("push", "#mounting-a-blob-from-another-repository")
async def blob_mount_unknown_falls_back(t: Context) -> None:
    """Mount of a blob that exists nowhere: 202 + Location, an upload the client can use."""
    source, target, blob = t.repo("mount-none"), t.repo("mount-none-to"), random_blob(300)
    await t.push_blob(source, random_blob(64))
    response = await t.request(
        "POST", f"/v2/{target}/blobs/uploads/", params={"mount": blob.digest, "from": source}
    )
    t.expect(response, 202, why="a registry unable to mount SHOULD open an upload")
    done = await t.request(
        "PUT",
        t.location(response),
        params={"digest": blob.digest},
        headers=OCTETS,
        content=blob.data,
    )
    t.expect(done, 201)
    t.cleanup_later(f"/v2/{target}/blobs/{blob.digest}")
    await verify_stored(t, target, blob)
