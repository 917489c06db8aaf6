"""Server settings: flags > ARTIFACT_STORE_* environment > TOML file > defaults.

The flag and environment names are an interface operators and scripts use;
keep them stable.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.lifecycle.policy import LifecyclePolicy

__all__ = ["SERVERS", "UPLOAD_CACHE", "ConfigError", "Settings", "load_settings", "parse_listen"]

# The ASGI servers ``serve`` can run the app on.
SERVERS = ("hypercorn", "granian")
# What the filesystem store does with pushed bytes once they are on disk.
UPLOAD_CACHE = ("keep", "drop")
_MAX_WORKERS = 64


class ConfigError(ValueError):
    """Bad configuration; the CLI prints the message as one line and exits non-zero."""


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = "127.0.0.1:5000"
    # The ASGI server: "hypercorn" (default) or "granian" (docs/PERFORMANCE.md).
    server: str = "hypercorn"
    # Server processes sharing the listening port (SO_REUSEPORT); each is a
    # whole server over the same database and store (docs/deploy.md).
    workers: int = 1
    data_dir: str = "./data"
    database_url: str | None = None
    storage_url: str | None = None
    # "keep": pushed bytes stay in the page cache, as any file written; "drop":
    # a large upload is dropped from it as it reaches the disk (faster pushes,
    # the first pull reads from disk; docs/PERFORMANCE.md). Filesystem store only.
    upload_cache: str = "keep"
    # Idle upload sessions older than this are expired and their bytes removed.
    upload_idle_seconds: float = 3600.0
    max_manifest_bytes: int = 4 * 1024 * 1024
    # Referrers per response; a longer list is paginated with a Link header.
    referrers_page_size: int = 1000
    # Answer blob GETs with 307 to a presigned object-store URL where the backend can.
    redirect_blobs: bool = False
    redirect_expiry_seconds: float = 300.0
    nats_url: str | None = None
    nats_subject: str = "artifact-store.events"
    # Auth (docs/auth.md): off by default; on, every request is denied unless allowed.
    auth: bool = False
    auth_service: str = "artifact-store"
    auth_issuer: str = "artifact-store"
    # The token endpoint clients are sent to; default: this server's /token.
    auth_realm: str | None = None
    auth_token_ttl_seconds: int = 300
    # Per-principal request rate (token bucket); 0 turns it off.
    auth_rate_per_second: float = 0.0
    auth_rate_burst: int = 100
    auth_oidc_issuer: str | None = None
    auth_oidc_audience: str | None = None
    auth_oidc_username_claim: str = "sub"
    auth_oidc_tenant_claim: str = "tenant"
    auth_oidc_roles_claim: str = "roles"
    # Garbage collection inside the server (docs/gc.md): a run every this many
    # seconds (0: never; the `gc` command works either way), keeping what is
    # younger than the grace window.
    gc_interval_seconds: float = 0.0
    gc_grace_seconds: float = 3600.0
    # Manifest GETs are recorded as manifest.pulled events, at most one per
    # (repository, digest) per this many seconds (docs/lifecycle.md).
    pull_record_seconds: float = 3600.0
    # The TOML file's [retention] and [[immutable_tags]] tables, validated
    # (registry/lifecycle/policy.py); None: no rules. Not settable by flag or env.
    lifecycle: LifecyclePolicy | None = None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).absolute() / 'meta.db'}"

    @property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return str(Path(self.data_dir).absolute() / "blobs")


# Structured settings come from tables of the TOML file only.
_STRUCTURED_FIELDS = frozenset({"lifecycle"})
_STRUCTURED_TABLES = frozenset({"retention", "immutable_tags"})
_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in _STRUCTURED_FIELDS}


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELDS[name].type
    try:
        if "bool" in str(kind):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if "float" in str(kind):
            return float(value)
        if "int" in str(kind):
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid value for {name}: {value!r}") from None
    return None if value is None else str(value)


def load_settings(
    flags: dict[str, Any] | None = None,
    config_file: str | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge the sources; unknown TOML keys and malformed values raise ConfigError."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or env.get("ARTIFACT_STORE_CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                document = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        structured = {k: document.pop(k) for k in _STRUCTURED_TABLES & document.keys()}
        if structured:
            from registry.lifecycle.policy import parse_policy  # imports this module

            try:
                values["lifecycle"] = parse_policy(structured)
            except ConfigError as exc:
                raise ConfigError(f"{config_file}: {exc}") from None
        for key, value in document.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r} in {config_file}")
            values[name] = _coerce(name, value)
    for name in _FIELDS:
        raw = env.get(f"ARTIFACT_STORE_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    settings = Settings(**values)
    parse_listen(settings.listen)
    for name, choices in (("server", SERVERS), ("upload_cache", UPLOAD_CACHE)):
        value = getattr(settings, name)
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    if not 1 <= settings.workers <= _MAX_WORKERS:
        raise ConfigError(f"workers must be between 1 and {_MAX_WORKERS}, got {settings.workers}")
    return settings


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)
