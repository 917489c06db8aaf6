"""The catalog as one principal sees it: only repositories it may pull.

Filtering happens before pagination, so ``n`` and ``last`` page through the
visible names and a page never hints at how many hidden names lie between.
https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-repositories
"""

from __future__ import annotations

import dataclasses

from registry.auth.authority import Authority
from registry.auth.policy import Principal
from registry.meta import MetadataStore

__all__ = ["visible_catalog"]

_BATCH = 500


async def visible_catalog(
    authority: Authority,
    principal: Principal,
    meta: MetadataStore,
    limit: int | None,
    last: str | None,
) -> list[str]:
    """Up to ``limit`` visible names after ``last``, in the catalog's order."""
    # A catalog token grants listing; what is listed follows the identity.
    identity = dataclasses.replace(principal, token_access=None)
    visible: list[str] = []
    cursor = last
    while True:
        batch = await meta.catalog(_BATCH, cursor)
        for name in batch:
            if "pull" in await authority.permitted(identity, name):
                visible.append(name)
                if limit is not None and len(visible) >= limit:
                    return visible
        if len(batch) < _BATCH:
            return visible
        cursor = batch[-1]
