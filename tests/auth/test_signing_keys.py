"""The registry's token-signing key: made once, on first use, by whichever process is first."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from registry.auth import Authority, AuthStore
from registry.meta import MetadataStore
from tests.auth.conftest import auth_settings
from tests.meta.conftest import UrlFactory

pytestmark = pytest.mark.anyio


async def test_concurrent_first_tokens_in_two_processes_share_one_key(
    make_url: UrlFactory, tmp_path: Path
) -> None:
    url = make_url()
    await (await MetadataStore.open(url)).close()  # the schema, as `serve` migrates it
    settings = auth_settings(url, tmp_path)
    stores = [AuthStore.open(url), AuthStore.open(url)]  # two processes' views of one database
    authorities = [Authority(store, settings) for store in stores]
    kids: list[str] = []

    async def first_key(authority: Authority) -> None:
        kid, _ = await authority.keys.signing_key()
        kids.append(kid)

    try:
        async with anyio.create_task_group() as group:
            for _ in range(8):
                for authority in authorities:
                    group.start_soon(first_key, authority)
    finally:
        for store in stores:
            await store.close()
    assert len(kids) == 16
    assert len(set(kids)) == 1, f"{len(set(kids))} signing keys were made"
