"""The black-box conformance suite, in process, on SQLite and PostgreSQL metadata.

We implement the whole spec, so every check must pass: no failures and no
UNSUPPORTED answers.
"""

from __future__ import annotations

import httpx
import pytest

from conformance import mismatches, run_checks
from tests.http.conftest import BASE_URL, Served


@pytest.mark.anyio
async def test_conformance_in_process(served: Served) -> None:
    transport = httpx.ASGITransport(app=served.app)

    def factory(url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, base_url=url, timeout=30)

    results = await run_checks(BASE_URL, client_factory=factory)
    assert len(results) > 30
    assert mismatches(results) == []
