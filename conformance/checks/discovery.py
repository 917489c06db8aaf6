"""Content discovery: tags (sorted, paginated) and the catalog.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-tags
The catalog (``/v2/_catalog``) is Docker Registry API V2, not part of v1.1,
so a 404 there counts as not supported.
"""

from __future__ import annotations

import re

from conformance.checks._registry import check
from conformance.content import oci_manifest
from conformance.context import Context
from conformance.result import CheckFailed, NotSupported

# Deliberately pushed out of order; all lower case, so byte order and the
# spec's "case-insensitive alphanumeric order" agree.
TAGS = ["v10", "beta", "v2", "alpha", "delta", "1.0", "gamma"]
LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


async def tagged_repo(t: Context, label: str) -> str:
    repo = t.repo(label)
    manifest = oci_manifest()
    await t.push_manifest(repo, manifest, TAGS[0])
    for tag in TAGS[1:]:
        response = await t.put_manifest(repo, manifest, tag)
        t.expect(response, 201)
    return repo


def tag_list(t: Context, document: object, repo: str) -> list[str]:
    if not isinstance(document, dict) or document.get("name") != repo:
        raise CheckFailed(f"tag list does not name {repo!r}: {document!r}")
    tags = document.get("tags")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise CheckFailed(f'"tags" is not a list of strings: {document!r}')
    return tags


@check("discovery", "#listing-tags")
async def tags_list_sorted(t: Context) -> None:
    """tags/list returns every tag, in lexical order."""
    repo = await tagged_repo(t, "tags")
    tags = tag_list(t, await t.get_json(f"/v2/{repo}/tags/list"), repo)
    if tags != sorted(TAGS):
        raise CheckFailed(f"tags {tags}; expected {sorted(TAGS)}")


@check("discovery", "#listing-tags")
async def tags_list_pagination(t: Context) -> None:
    """?n= returns exactly n tags; ?n=&last= continues after last; n=0 is empty."""
    repo = await tagged_repo(t, "tags-page")
    expected = sorted(TAGS)
    url = f"/v2/{repo}/tags/list"
    first = tag_list(t, await t.get_json(url, {"n": "3"}), repo)
    if first != expected[:3]:
        raise CheckFailed(f"n=3 gave {first}; expected {expected[:3]}")
    rest = tag_list(t, await t.get_json(url, {"n": "3", "last": first[-1]}), repo)
    if rest != expected[3:6]:
        raise CheckFailed(f"n=3&last={first[-1]} gave {rest}; expected {expected[3:6]}")
    tail = tag_list(t, await t.get_json(url, {"last": expected[-2]}), repo)
    if tail != expected[-1:]:
        raise CheckFailed(f"last={expected[-2]} gave {tail}; expected {expected[-1:]}")
    response = t.expect(await t.request("GET", url, params={"n": "0"}), 200)
    tags = response.json().get("tags") or []
    if tags or "Link" in response.headers:
        raise CheckFailed(f"n=0 MUST give an empty list and no Link; got {tags} {response.headers}")


@check("discovery", "#listing-tags")
async def tags_list_link_header(t: Context) -> None:
    """With more tags than n, a Link rel="next" leads to the rest (Docker API V2 practice)."""
    repo = await tagged_repo(t, "tags-link")
    response = t.expect(await t.request("GET", f"/v2/{repo}/tags/list", params={"n": "4"}), 200)
    seen = tag_list(t, response.json(), repo)
    if len(seen) != 4:
        raise CheckFailed(f"n=4 returned {len(seen)} tags: {seen}")
    if "Link" not in response.headers:
        raise NotSupported("no Link header on a partial tag list (v1.1 does not require one)")
    for _ in range(len(TAGS)):
        link = response.headers.get("Link")
        if link is None:
            break
        match = LINK.search(link)
        if match is None:
            raise CheckFailed(f"Link header {link!r} has no rel=next target")
        response = t.expect(await t.request("GET", response.url.join(match.group(1))), 200)
        seen += tag_list(t, response.json(), repo)
    else:
        raise CheckFailed("Link headers never ended")
    if seen != sorted(TAGS):
        raise CheckFailed(f"following Link gave {seen}; expected {sorted(TAGS)}")


@check("discovery", "#listing-tags")
async def tags_list_unknown_repository(t: Context) -> None:
    """tags/list of a repository never pushed: 404 NAME_UNKNOWN."""
    response = await t.request("GET", f"/v2/{t.repo('no-tags')}/tags/list")
    t.expect_error(response, [404], ["NAME_UNKNOWN"])


@check("discovery", "#content-discovery")
async def catalog_lists_repository(t: Context) -> None:
    """/v2/_catalog lists a pushed repository, sorted, across Link-paginated pages."""
    repo = t.repo("catalog")
    await t.push_manifest(repo, oci_manifest(), "latest")
    response = await t.request("GET", "/v2/_catalog", params={"n": "100"})
    if response.status_code in (404, 405):
        raise NotSupported(f"/v2/_catalog answered {response.status_code} (not part of v1.1)")
    names: list[str] = []
    for _ in range(200):
        t.expect(response, 200)
        page = response.json().get("repositories")
        if not isinstance(page, list):
            raise CheckFailed(f'catalog page without a "repositories" list: {response.text[:200]}')
        names += page
        link = response.headers.get("Link")
        match = LINK.search(link) if link else None
        if match is None or repo in names:
            break
        response = await t.request("GET", response.url.join(match.group(1)))
    if repo not in names:
        raise CheckFailed(f"{repo} is not in the catalog")
    if names != sorted(names):
        raise CheckFailed("catalog is not in lexical order")
