"""The metadata fixtures (SQLite and PostgreSQL), plus a JetStream namespace per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import nats.js.errors
import pytest

from tests.meta.conftest import make_url, store

__all__ = ["NATS_URL", "Namespace", "make_url", "namespace", "store"]

NATS_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class Namespace:
    """A stream name and subject prefix no other test run uses."""

    stream: str
    prefix: str


@pytest.fixture
async def namespace() -> AsyncIterator[Namespace]:
    token = secrets.token_hex(6)
    # The stream name the publisher derives from the prefix by default.
    space = Namespace(
        stream=f"ARTIFACT_STORE_TEST_{token.upper()}", prefix=f"artifact-store-test.{token}"
    )
    try:
        yield space
    finally:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(space.stream)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()
