"""Settings come from flags, then ARTIFACT_STORE_* variables, then the TOML file, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import ConfigError, Settings, load_settings, parse_listen
from registry.service.registry import open_registry
from storage.filesystem import FsBlobStore


def _toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "artifact-store.toml"
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    settings = load_settings({}, None, {})
    assert settings == Settings()
    assert settings.server.listen == "127.0.0.1:5000"
    assert settings.storage.upload_idle_seconds == 3600
    assert settings.server.max_manifest_bytes == 4 * 1024 * 1024
    data = Path("data").absolute()
    assert settings.resolved_database_url == f"sqlite:///{data / 'meta.db'}"
    assert settings.resolved_storage_url == str(data / "blobs")


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    config = _toml(
        tmp_path,
        'listen = "0.0.0.0:7000"\ndata-dir = "/srv/file"\nupload_idle_seconds = 60\n'
        'database_url = "sqlite:///file.db"\n',
    )
    environ = {
        "ARTIFACT_STORE_LISTEN": "0.0.0.0:6000",
        "ARTIFACT_STORE_DATA_DIR": "/srv/env",
    }
    settings = load_settings({"listen": "127.0.0.1:5555", "data_dir": None}, config, environ)
    assert settings.server.listen == "127.0.0.1:5555"  # flag
    assert settings.data_dir == "/srv/env"  # environment (the flag was not given)
    assert settings.storage.upload_idle_seconds == 60.0  # file
    assert settings.database.url == "sqlite:///file.db"  # file
    assert settings.storage.url is None  # default


def test_config_file_named_by_the_environment(tmp_path: Path) -> None:
    config = _toml(tmp_path, "max_manifest_bytes = 1024\nredirect_blobs = true\n")
    settings = load_settings({}, None, {"ARTIFACT_STORE_CONFIG": config})
    assert settings.server.max_manifest_bytes == 1024
    assert settings.storage.redirect_blobs is True


def test_environment_values_are_typed() -> None:
    settings = load_settings(
        {},
        None,
        {"ARTIFACT_STORE_UPLOAD_IDLE_SECONDS": "90", "ARTIFACT_STORE_REDIRECT_BLOBS": "yes"},
    )
    assert settings.storage.upload_idle_seconds == 90.0
    assert settings.storage.redirect_blobs is True


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("listen = [1\n", "not valid TOML"),
        ("bogus = 1\n", "unknown setting 'bogus'"),
        ('upload_idle_seconds = "soon"\n', "invalid value for upload_idle_seconds"),
        ('listen = "nowhere"\n', "--listen must be HOST:PORT"),
        ('upload_cache = "never"\n', "upload_cache must be one of keep, drop"),
    ],
)
def test_bad_config_file(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings({}, _toml(tmp_path, text), {})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({}, str(tmp_path / "absent.toml"), {})


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:5000", ("127.0.0.1", 5000)), ("[::1]:80", ("::1", 80)), ("host:1", ("host", 1))],
)
def test_listen_addresses(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["5000", ":5000", "host:", "host:0", "host:65536", "host:x"])
def test_malformed_listen(listen: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(listen)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("environ", "cached"), [({}, True), ({"ARTIFACT_STORE_UPLOAD_CACHE": "drop"}, False)]
)
async def test_upload_cache_reaches_the_filesystem_store(
    tmp_path: Path, environ: dict[str, str], cached: bool
) -> None:
    """Pushed bytes stay in the page cache unless the operator says ``drop``."""
    settings = load_settings({"data_dir": str(tmp_path)}, None, environ)
    async with open_registry(settings) as registry:
        assert isinstance(registry.blobs, FsBlobStore)
        assert registry.blobs.cache_uploads is cached
