"""Server settings: flags > ARTIFACT_STORE_* environment > TOML file > defaults.

Settings are grouped in sections, one frozen dataclass each (server,
storage, database, auth, lifecycle, events). The names operators use are
flat — ``--auth-oidc-issuer``, ``ARTIFACT_STORE_AUTH_OIDC_ISSUER``,
``auth_oidc_issuer = ...`` in the TOML file — and are an interface scripts
rely on: ``_FLAT`` maps each to its section and field, and nothing else
names them. Values are coerced by the field's declared type (``bool``,
``int``, ``float``, ``str``, a ``Literal`` of choices, each possibly
``| None``), read with ``typing.get_type_hints``, never by the text of an
annotation.

This module knows nothing of the features it configures: the lifecycle
policy (the TOML file's ``[retention]`` and ``[[immutable_tags]]`` tables)
is kept here as plain data and parsed by ``registry.rules.policy``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "SERVERS",
    "UPLOAD_CACHE",
    "AuthSettings",
    "ConfigError",
    "DatabaseSettings",
    "EventsSettings",
    "LifecycleSettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "load_settings",
    "parse_listen",
]

# The ASGI servers ``serve`` can run the app on.
ServerName = Literal["hypercorn", "granian"]
SERVERS: tuple[str, ...] = typing.get_args(ServerName)
# What the filesystem store does with pushed bytes once they are on disk.
UploadCache = Literal["keep", "drop"]
UPLOAD_CACHE: tuple[str, ...] = typing.get_args(UploadCache)
_MAX_WORKERS = 64


class ConfigError(ValueError):
    """Bad configuration; the CLI prints the message as one line and exits non-zero."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    listen: str = "127.0.0.1:5000"
    # The ASGI server: "hypercorn" (default) or "granian" (docs/PERFORMANCE.md).
    server: ServerName = "hypercorn"
    # Server processes sharing the listening port (SO_REUSEPORT); each is a
    # whole server over the same database and store (docs/deploy.md).
    workers: int = 1
    max_manifest_bytes: int = 4 * 1024 * 1024
    # Referrers per response; a longer list is paginated with a Link header.
    referrers_page_size: int = 1000


@dataclass(frozen=True, slots=True)
class StorageSettings:
    # A directory, file://, memory:// or s3:// URL; None: <data_dir>/blobs.
    url: str | None = None
    # "keep": pushed bytes stay in the page cache, as any file written; "drop":
    # a large upload is dropped from it as it reaches the disk (faster pushes,
    # the first pull reads from disk; docs/PERFORMANCE.md). Filesystem store only.
    upload_cache: UploadCache = "keep"
    # Idle upload sessions older than this are expired and their bytes removed.
    upload_idle_seconds: float = 3600.0
    # Answer blob GETs with 307 to a presigned object-store URL where the backend can.
    redirect_blobs: bool = False
    redirect_expiry_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    # sqlite:///PATH or postgresql://...; None: <data_dir>/meta.db.
    url: str | None = None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    # docs/auth.md: off by default; on, every request is denied unless allowed.
    enabled: bool = False
    service: str = "artifact-store"
    issuer: str = "artifact-store"
    # The token endpoint clients are sent to; default: this server's /token.
    realm: str | None = None
    token_ttl_seconds: int = 300
    # Per-principal request rate (token bucket); 0 turns it off.
    rate_per_second: float = 0.0
    rate_burst: int = 100
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_username_claim: str = "sub"
    oidc_tenant_claim: str = "tenant"
    oidc_roles_claim: str = "roles"


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    # Garbage collection inside the server (docs/gc.md): a run every this many
    # seconds (0: never; the `gc` command works either way), keeping what is
    # younger than the grace window.
    gc_interval_seconds: float = 0.0
    gc_grace_seconds: float = 3600.0
    # Manifest GETs are recorded as manifest.pulled events, at most one per
    # (repository, digest) per this many seconds (docs/lifecycle.md).
    pull_record_seconds: float = 3600.0
    # The TOML file's [retention] and [[immutable_tags]] tables as they were
    # written; registry/rules/policy.py parses them. Not settable by flag or env.
    policy: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventsSettings:
    # Publish events to NATS JetStream (nats://host:4222); None: no publisher.
    nats_url: str | None = None
    nats_subject: str = "artifact-store.events"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: str = "./data"
    # The TOML file the settings were read from, if any (for messages).
    config_file: str | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    events: EventsSettings = field(default_factory=EventsSettings)

    @property
    def resolved_database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{Path(self.data_dir).absolute() / 'meta.db'}"

    @property
    def resolved_storage_url(self) -> str:
        if self.storage.url:
            return self.storage.url
        return str(Path(self.data_dir).absolute() / "blobs")


# The flat name operators use (flag without dashes, env without prefix, TOML
# key) -> (section, field); section None is a field of Settings itself.
_FLAT: dict[str, tuple[str | None, str]] = {
    "data_dir": (None, "data_dir"),
    "listen": ("server", "listen"),
    "server": ("server", "server"),
    "workers": ("server", "workers"),
    "max_manifest_bytes": ("server", "max_manifest_bytes"),
    "referrers_page_size": ("server", "referrers_page_size"),
    "storage_url": ("storage", "url"),
    "upload_cache": ("storage", "upload_cache"),
    "upload_idle_seconds": ("storage", "upload_idle_seconds"),
    "redirect_blobs": ("storage", "redirect_blobs"),
    "redirect_expiry_seconds": ("storage", "redirect_expiry_seconds"),
    "database_url": ("database", "url"),
    "auth": ("auth", "enabled"),
    "auth_service": ("auth", "service"),
    "auth_issuer": ("auth", "issuer"),
    "auth_realm": ("auth", "realm"),
    "auth_token_ttl_seconds": ("auth", "token_ttl_seconds"),
    "auth_rate_per_second": ("auth", "rate_per_second"),
    "auth_rate_burst": ("auth", "rate_burst"),
    "auth_oidc_issuer": ("auth", "oidc_issuer"),
    "auth_oidc_audience": ("auth", "oidc_audience"),
    "auth_oidc_username_claim": ("auth", "oidc_username_claim"),
    "auth_oidc_tenant_claim": ("auth", "oidc_tenant_claim"),
    "auth_oidc_roles_claim": ("auth", "oidc_roles_claim"),
    "gc_interval_seconds": ("lifecycle", "gc_interval_seconds"),
    "gc_grace_seconds": ("lifecycle", "gc_grace_seconds"),
    "pull_record_seconds": ("lifecycle", "pull_record_seconds"),
    "nats_url": ("events", "nats_url"),
    "nats_subject": ("events", "nats_subject"),
}
# The TOML file's tables that hold the lifecycle policy (plain data here).
_POLICY_TABLES = frozenset({"retention", "immutable_tags"})
_SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Settings)[f.name]
    for f in dataclasses.fields(Settings)
    if f.name not in ("data_dir", "config_file")
}


def _type_of(name: str) -> Any:
    section, attribute = _FLAT[name]
    owner = Settings if section is None else _SECTIONS[section]
    return typing.get_type_hints(owner)[attribute]


def _coerce(name: str, value: Any) -> Any:
    """``value`` (TOML-typed or a string) as the declared type of setting ``name``."""
    kind = _type_of(name)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None:
            return None
        (kind,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is float:
            return float(value)
        if kind is int:
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid value for {name}: {value!r}") from None
    return str(value)


def _build(
    values: Mapping[str, Any], policy: Mapping[str, Any], config_file: str | None
) -> Settings:
    grouped: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
    top: dict[str, Any] = {}
    for name, value in values.items():
        section, attribute = _FLAT[name]
        (top if section is None else grouped[section])[attribute] = value
    grouped["lifecycle"]["policy"] = policy
    sections = {name: _SECTIONS[name](**fields) for name, fields in grouped.items()}
    return Settings(**top, **sections, config_file=config_file)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the sources; unknown TOML keys and malformed values raise ConfigError.

    ``flags`` and the environment use the flat names (``auth_oidc_issuer``);
    a flag whose value is None was not given.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    config_file = config_file or env.get("ARTIFACT_STORE_CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                document = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        policy = {key: document.pop(key) for key in _POLICY_TABLES & document.keys()}
        for key, value in document.items():
            name = key.replace("-", "_")
            if name not in _FLAT:
                raise ConfigError(f"unknown setting {key!r} in {config_file}")
            values[name] = _coerce(name, value)
    for name in _FLAT:
        raw = env.get(f"ARTIFACT_STORE_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    settings = _build(values, policy, config_file)
    parse_listen(settings.server.listen)
    if not 1 <= settings.server.workers <= _MAX_WORKERS:
        raise ConfigError(
            f"workers must be between 1 and {_MAX_WORKERS}, got {settings.server.workers}"
        )
    return settings


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)
