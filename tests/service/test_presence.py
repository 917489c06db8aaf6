"""``stored``: a blob counts as held only if each of its names resolves to its own bytes."""

from __future__ import annotations

import pytest

from oci.digest import Digest
from registry.service.presence import stored
from storage.memory import MemoryBlobStore
from storage.testing import put

pytestmark = pytest.mark.anyio

LAYER, OTHER = b"the layer being recorded", b"some other blob"


async def test_a_blob_whose_names_resolve_to_it_is_stored() -> None:
    store = MemoryBlobStore()
    sha512 = Digest.compute(LAYER, "sha512")
    layer = await put(store, LAYER, expected=sha512)
    assert await stored(store, layer, sha512)
    assert await stored(store, layer, None)


async def test_a_blob_whose_bytes_are_gone_is_not_stored() -> None:
    store = MemoryBlobStore()
    layer = await put(store, LAYER)
    await store.delete(layer.sha256)
    assert not await stored(store, layer, None)


async def test_a_blake3_name_resolving_to_other_bytes_is_not_stored() -> None:
    store = MemoryBlobStore()
    layer = await put(store, LAYER)
    other = await put(store, OTHER)
    store._backend.aliases[layer.blake3] = other.sha256.hex  # an alias gone astray
    assert not await stored(store, layer, None)


async def test_a_sha512_name_resolving_to_other_bytes_is_not_stored() -> None:
    store = MemoryBlobStore()
    layer = await put(store, LAYER)
    sha512_of_other = Digest.compute(OTHER, "sha512")
    await put(store, OTHER, expected=sha512_of_other)
    assert not await stored(store, layer, sha512_of_other)
