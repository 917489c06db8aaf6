"""Error bodies and invalid names.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#error-codes
The spec lets a 4xx body be "in any format" and requires the envelope only of
JSON bodies. This suite is stricter: every 4xx it provokes (HEAD aside, which
has no body) must carry ``{"errors": [{"code", "message"}]}`` with one of the
spec's codes, because that is what every client's error path parses.
"""

from __future__ import annotations

from conformance.checks._registry import check
from conformance.content import oci_manifest
from conformance.context import Context, envelope_problem
from conformance.result import CheckFailed

REFUSED = (400, 404)


async def expect_refused_name(t: Context, path: str) -> None:
    """400 NAME_INVALID or 404: an invalid name is never served, and never 2xx."""
    for method in ("GET", "POST"):
        response = await t.request(
            method, path + ("tags/list" if method == "GET" else "blobs/uploads/")
        )
        if 300 <= response.status_code < 400:
            # A router that cleans the path (Go's ServeMux) redirects to the
            # normalised name: fine, as long as the ".." did not survive.
            target = t.location(response)
            if ".." in target or "%2e%2e" in target.lower():
                raise CheckFailed(f"redirected to {target!r}, which keeps the '..'")
        elif response.status_code == 400:
            t.expect_error(response, [400], ["NAME_INVALID"])
        else:
            t.expect(response, 404, why=f"{path!r} is not a valid repository name")


@check("errors", "#pulling-manifests")
async def name_invalid_upper_case(t: Context) -> None:
    """A name with upper-case letters breaks the name grammar: 400 NAME_INVALID or 404."""
    await expect_refused_name(t, f"/v2/{t.state.namespace}/Upper-Case/")


@check("errors", "#pulling-manifests")
async def name_invalid_traversal(t: Context) -> None:
    """A name with an escaped ``..`` path segment: 400 NAME_INVALID or 404, never a 2xx."""
    await expect_refused_name(t, f"/v2/{t.state.namespace}/%2E%2E/escape/")
    await expect_refused_name(t, f"/v2/{t.state.namespace}/a..b/")


@check("errors", "#pulling-manifests")
async def tag_invalid(t: Context) -> None:
    """A manifest PUT to a tag outside the tag grammar is refused with 400."""
    repo, manifest = t.repo("bad-tag"), oci_manifest()
    await t.push_manifest(repo, manifest, "good")
    response = await t.put_manifest(repo, manifest, "-starts-with-dash")
    # 404 is what a router that matches the tag grammar in its path answers.
    if response.status_code == 404:
        return
    t.expect_error(response, [400], ["TAG_INVALID", "MANIFEST_INVALID", "NAME_INVALID"])


@check("errors", "#error-codes")
async def error_bodies(t: Context) -> None:
    """Every 4xx the run provoked so far carried the spec's JSON error envelope."""
    samples = list(t.state.errors_seen)
    if not samples:
        # Provoke one, so the check can fail when run alone.
        await t.request("GET", f"/v2/{t.repo('no-such')}/manifests/latest")
        samples = list(t.state.errors_seen)
    problems = []
    for sample in samples:
        problem = envelope_problem(sample.body)
        if problem is not None:
            problems.append(
                f"{sample.check}: {sample.method} {sample.path} -> {sample.status}: {problem}"
            )
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CheckFailed(f"{len(problems)} of {len(samples)} 4xx bodies: {shown}{more}")
