"""Blob ranges: resumable pulls with HTTP Range (RFC 9110 section 14).

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#resumable-pull
The spec's use case relies on Range; HTTP lets a server ignore Range and send
the whole body with 200, so that answer counts as not supported. A 206 must
then be exactly right.
"""

from __future__ import annotations

import re

from conformance.checks._registry import check
from conformance.content import random_blob
from conformance.context import Context
from conformance.result import CheckFailed, NotSupported

CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@check("ranges", "#resumable-pull")
async def blob_range(t: Context) -> None:
    """GET with Range: bytes=a-b answers 206, Content-Range bytes a-b/size, and those bytes."""
    repo, blob = t.repo("range"), random_blob(4096)
    await t.push_blob(repo, blob)
    url = f"/v2/{repo}/blobs/{blob.digest}"
    for first, last in ((0, 99), (1000, 2047), (4000, 4095)):
        response = await t.get_following(url, headers={"Range": f"bytes={first}-{last}"})
        if response.status_code == 200:
            raise NotSupported("Range ignored: 200 with the whole blob")
        t.expect(response, 206)
        match = CONTENT_RANGE.match(t.header(response, "Content-Range"))
        wanted = (str(first), str(last), str(len(blob.data)))
        if match is None or match.groups() != wanted:
            raise CheckFailed(
                f"Content-Range {response.headers['Content-Range']!r}; "
                f"expected bytes {first}-{last}/{len(blob.data)}"
            )
        if response.content != blob.data[first : last + 1]:
            raise CheckFailed(f"bytes {first}-{last} differ from the blob's")


@check("ranges", "#resumable-pull")
async def blob_range_open_ended(t: Context) -> None:
    """Range: bytes=a- (how a client resumes) returns the rest of the blob with 206."""
    repo, blob = t.repo("range-open"), random_blob(3000)
    await t.push_blob(repo, blob)
    response = await t.get_following(
        f"/v2/{repo}/blobs/{blob.digest}", headers={"Range": "bytes=1234-"}
    )
    if response.status_code == 200:
        raise NotSupported("Range ignored: 200 with the whole blob")
    t.expect(response, 206)
    if response.content != blob.data[1234:]:
        raise CheckFailed("the resumed tail differs from the blob's")


@check("ranges", "#resumable-pull")
async def blob_range_unsatisfiable(t: Context) -> None:
    """A range starting past the end answers 416."""
    repo, blob = t.repo("range-416"), random_blob(1000)
    await t.push_blob(repo, blob)
    response = await t.get_following(
        f"/v2/{repo}/blobs/{blob.digest}", headers={"Range": "bytes=5000-5999"}
    )
    if response.status_code == 200:
        raise NotSupported("Range ignored: 200 with the whole blob")
    t.expect(response, 416)
