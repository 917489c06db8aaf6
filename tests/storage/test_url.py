"""open_store: one configuration string to a driver, or one clear line saying why not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from storage.filesystem import FsBlobStore
from storage.memory import MemoryBlobStore
from storage.s3 import S3BlobStore
from storage.url import open_store


def test_file_url_and_plain_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(f"file://{tmp_path}/a%20b")
    assert isinstance(store, FsBlobStore)
    assert store.root == tmp_path / "a b"
    store = open_store(f"file://localhost{tmp_path}/c")
    assert isinstance(store, FsBlobStore)
    assert store.root == tmp_path / "c"
    store = open_store(str(tmp_path / "plain"))
    assert isinstance(store, FsBlobStore)
    assert store.root == tmp_path / "plain"
    monkeypatch.chdir(tmp_path)
    store = open_store("relative/dir")
    assert isinstance(store, FsBlobStore)
    assert store.root == tmp_path / "relative" / "dir"


def test_upload_cache_choice_reaches_the_filesystem_driver(tmp_path: Path) -> None:
    for url in (str(tmp_path), f"file://{tmp_path}"):
        store = open_store(url)
        assert isinstance(store, FsBlobStore)
        assert store.cache_uploads
        store = open_store(url, cache_uploads=False)
        assert isinstance(store, FsBlobStore)
        assert not store.cache_uploads
    assert isinstance(open_store("memory://", cache_uploads=False), MemoryBlobStore)


def test_memory_url() -> None:
    assert isinstance(open_store("memory://"), MemoryBlobStore)
    assert open_store("memory://") is not open_store("memory://")


def test_s3_url_is_handed_to_the_s3_driver() -> None:
    store = open_store("s3://bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1")
    assert isinstance(store, S3BlobStore)
    assert "bucket" in repr(store)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("file://otherhost/data", "host"),
        ("file:relative/data", "absolute path"),
        ("file:///data?x=1", "query"),
        ("memory://something", "memory://"),
        ("s3://", "bucket"),
        ("gopher://example.org/blobs", "unknown storage URL scheme 'gopher'"),
    ],
)
def test_malformed_urls_raise_one_clear_line(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        open_store(url)
    assert "\n" not in str(caught.value)


def test_s3_without_its_driver_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "storage.s3", None)  # as if the driver were not installed
    with pytest.raises(ValueError, match=r"s3:// storage is unavailable"):
        open_store("s3://bucket/prefix")
