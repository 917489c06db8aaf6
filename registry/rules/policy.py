"""The lifecycle configuration: retention rules, native retention classes, immutable tags.

It lives in the server's TOML file beside the flat settings (docs/lifecycle.md)::

    [retention.classes]            # native artifacts' retention classes
    scratch = "7d"
    release = "forever"

    [[retention.rules]]            # first rule whose selector matches a repository applies
    name = "ci-builds"
    repository = "team-a/**"       # glob: * within a component, ** across; and/or tenant
    keep_last = 10                 # the 10 most recently pushed tags are kept
    keep_tags = ["v*", "re:^release-[0-9]+$"]
    expire_after = "30d"           # tags pushed more than 30 days ago ...
    expire_not_pulled_after = "14d"  # ... and not pulled for 14 days, expire
    untagged_grace = "1d"          # untagged manifests go 1 day after they lost their last tag

    [[immutable_tags]]
    repository = "prod/**"
    tags = ["v*"]

The settings keep these tables as plain data (``Settings.lifecycle.policy``);
``policy_of`` parses them, and the CLI calls it as soon as the settings are
loaded, so a bad rule is one ``ConfigError`` line naming the rule and the
key before anything starts. With no file, nothing
expires and nothing is immutable; only native artifacts' own retention
(``retention.until``) is honoured.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.auth.policy import pattern_matches
from registry.auth.scope import tenant_of
from registry.config import ConfigError, Settings

__all__ = [
    "DEFAULT_POLICY",
    "FOREVER",
    "ImmutableRule",
    "LifecyclePolicy",
    "RetentionRule",
    "TagPattern",
    "format_duration",
    "parse_duration",
    "parse_policy",
    "policy_of",
]

# A retention class that never lapses.
FOREVER = dt.timedelta.max

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = ("w", "d", "h", "m", "s")
_FOREVER_WORDS = frozenset({"forever", "never"})
# The native manifest's grammar for a retention class (docs/native-manifest.md).
_CLASS = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_RULE_KEYS = frozenset(
    {
        "name",
        "repository",
        "tenant",
        "keep_last",
        "keep_tags",
        "expire_after",
        "expire_not_pulled_after",
        "untagged_grace",
    }
)
_IMMUTABLE_KEYS = frozenset({"name", "repository", "tenant", "tags"})
_RETENTION_KEYS = frozenset({"rules", "classes"})


def parse_duration(text: str, where: str = "duration") -> dt.timedelta:
    """``30d``, ``12h``, ``1d12h``, ``90m``, ``45s``, ``2w``; ``0s`` is zero."""
    if not isinstance(text, str):
        raise ConfigError(f'{where} must be a duration string such as "30d", got {text!r}')
    found = _DURATION.fullmatch(text.strip())
    if not text.strip() or found is None:
        raise ConfigError(
            f'{where} must be a duration such as "30d", "12h" or "1d12h" '
            f"(units w, d, h, m, s), got {text!r}"
        )
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    try:
        return dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ConfigError(f"{where} is too long: {text!r}") from None


def format_duration(value: dt.timedelta) -> str:
    """The inverse of ``parse_duration`` for explanations: ``30d``, ``1d12h``, ``forever``."""
    if value == FOREVER:
        return "forever"
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class TagPattern:
    """A glob over tags (``v*``, ``release-?``), or a regular expression after ``re:``."""

    text: str
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: object, where: str) -> TagPattern:
        if not isinstance(text, str) or not text:
            raise ConfigError(f"{where}: a tag pattern must be a non-empty string, got {text!r}")
        if text.startswith("re:"):
            try:
                compiled = re.compile(text[3:])
            except re.error as exc:
                raise ConfigError(f"{where}: bad regular expression {text[3:]!r}: {exc}") from None
        else:
            compiled = re.compile(fnmatch.translate(text))
        return cls(text, compiled)

    def matches(self, tag: str) -> bool:
        return self.regex.fullmatch(tag) is not None


@dataclass(frozen=True, slots=True)
class _Selector:
    repository: str | None
    tenant: str | None

    def matches(self, repository: str) -> bool:
        if self.tenant is not None and tenant_of(repository) != self.tenant:
            return False
        return self.repository is None or pattern_matches(self.repository, repository)

    def describe(self) -> str:
        parts = []
        if self.repository is not None:
            parts.append(f"repository {self.repository}")
        if self.tenant is not None:
            parts.append(f"tenant {self.tenant}")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """One ``[[retention.rules]]`` entry; see docs/lifecycle.md for how its keys combine.

    A tag expires when every expiry condition the rule sets holds (pushed
    before ``expire_after``, not pulled within ``expire_not_pulled_after``;
    with neither set, being older than the ``keep_last`` newest is the
    condition) and no keep condition (``keep_last``, ``keep_tags``) keeps it.
    """

    name: str
    selector: _Selector
    keep_last: int | None = None
    keep_tags: tuple[TagPattern, ...] = ()
    expire_after: dt.timedelta | None = None
    expire_not_pulled_after: dt.timedelta | None = None
    untagged_grace: dt.timedelta | None = None

    def matches(self, repository: str) -> bool:
        return self.selector.matches(repository)

    @property
    def expires_tags(self) -> bool:
        return (
            self.expire_after is not None
            or self.expire_not_pulled_after is not None
            or self.keep_last is not None
        )

    def kept_by_pattern(self, tag: str) -> TagPattern | None:
        return next((p for p in self.keep_tags if p.matches(tag)), None)


@dataclass(frozen=True, slots=True)
class ImmutableRule:
    """One ``[[immutable_tags]]`` entry: tags matching ``tags`` in matching repositories."""

    name: str
    selector: _Selector
    tags: tuple[TagPattern, ...]

    def covers(self, repository: str, tag: str) -> bool:
        return self.selector.matches(repository) and any(p.matches(tag) for p in self.tags)


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    rules: tuple[RetentionRule, ...] = ()
    # Native retention class -> how long after push an artifact of that class is kept.
    classes: Mapping[str, dt.timedelta] = field(default_factory=dict)
    immutable_rules: tuple[ImmutableRule, ...] = ()

    def rule_for(self, repository: str) -> RetentionRule | None:
        """The first rule, in file order, whose selector matches ``repository``."""
        return next((rule for rule in self.rules if rule.matches(repository)), None)

    def immutable(self, repository: str, tag: str) -> bool:
        """What ``Rules`` asks of a tag (built from the settings by ``rules_of``)."""
        return any(rule.covers(repository, tag) for rule in self.immutable_rules)

    def class_duration(self, retention_class: str) -> dt.timedelta | None:
        """None: the class is not configured (only the artifact's ``until`` counts)."""
        return self.classes.get(retention_class)


DEFAULT_POLICY = LifecyclePolicy()


def policy_of(settings: Settings) -> LifecyclePolicy:
    """The settings' lifecycle policy; the default (nothing expires) when none was configured."""
    configured = settings.lifecycle.policy
    if not configured:
        return DEFAULT_POLICY
    try:
        return parse_policy(configured)
    except ConfigError as exc:
        if settings.config_file is None:
            raise
        raise ConfigError(f"{settings.config_file}: {exc}") from None


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, got {type(value).__name__}")
    return value


def _check_keys(entry: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in entry:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
            )


def _string(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value.strip()


def _selector(entry: Mapping[str, Any], where: str) -> _Selector:
    repository = _string(entry, "repository", where)
    tenant = _string(entry, "tenant", where)
    if repository is None and tenant is None:
        raise ConfigError(
            f'{where}: needs repository (a pattern such as "team-a/**"; "**" for all) and/or tenant'
        )
    if repository is not None and not re.fullmatch(r"[a-z0-9._/*-]+", repository):
        raise ConfigError(
            f"{where}: repository pattern {repository!r} may hold only lower-case names, "
            "'/', '*' and '**'"
        )
    return _Selector(repository, tenant)


def _patterns(entry: Mapping[str, Any], key: str, where: str) -> tuple[TagPattern, ...]:
    value = entry.get(key)
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{where}: {key} must be a list of patterns, got {value!r}")
    return tuple(TagPattern.parse(item, f"{where}: {key}") for item in value)


def _duration(entry: Mapping[str, Any], key: str, where: str) -> dt.timedelta | None:
    value = entry.get(key)
    return None if value is None else parse_duration(value, f"{where}: {key}")


def _name(entry: Mapping[str, Any], default: str, where: str) -> str:
    return _string(entry, "name", where) or default


def _rule(raw: object, index: int) -> RetentionRule:
    where = f"retention.rules[{index}]"
    entry = _table(raw, where)
    name = _name(entry, f"rule-{index + 1}", where)
    where = f"retention rule {name!r}"
    _check_keys(entry, _RULE_KEYS, where)
    keep_last = entry.get("keep_last")
    if keep_last is not None and (
        isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0
    ):
        raise ConfigError(f"{where}: keep_last must be a non-negative integer, got {keep_last!r}")
    rule = RetentionRule(
        name=name,
        selector=_selector(entry, where),
        keep_last=keep_last,
        keep_tags=_patterns(entry, "keep_tags", where),
        expire_after=_duration(entry, "expire_after", where),
        expire_not_pulled_after=_duration(entry, "expire_not_pulled_after", where),
        untagged_grace=_duration(entry, "untagged_grace", where),
    )
    if not rule.expires_tags and rule.untagged_grace is None:
        raise ConfigError(
            f"{where}: expires nothing; set keep_last, expire_after, "
            "expire_not_pulled_after or untagged_grace"
        )
    return rule


def _immutable(raw: object, index: int) -> ImmutableRule:
    where = f"immutable_tags[{index}]"
    entry = _table(raw, where)
    name = _name(entry, f"immutable-{index + 1}", where)
    where = f"immutable tags {name!r}"
    _check_keys(entry, _IMMUTABLE_KEYS, where)
    tags = _patterns(entry, "tags", where) if "tags" in entry else (TagPattern.parse("*", where),)
    if not tags:
        raise ConfigError(f"{where}: tags is empty; omit it to make every tag immutable")
    return ImmutableRule(name, _selector(entry, where), tags)


def _classes(raw: object) -> dict[str, dt.timedelta]:
    table = _table(raw, "retention.classes")
    out: dict[str, dt.timedelta] = {}
    for name, value in table.items():
        if not _CLASS.fullmatch(name) or len(name) > 64:
            raise ConfigError(f"retention.classes: {name!r} is not a retention class name")
        where = f"retention.classes.{name}"
        if isinstance(value, str) and value.strip().lower() in _FOREVER_WORDS:
            out[name] = FOREVER
        else:
            out[name] = parse_duration(value, where)
    return out


def _unique(names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"two {what} are named {name!r}; names must be unique")
        seen.add(name)


def parse_policy(document: Mapping[str, Any]) -> LifecyclePolicy:
    """Build the policy from the TOML file's ``retention`` and ``immutable_tags`` tables."""
    retention = _table(document.get("retention", {}), "[retention]")
    _check_keys(retention, _RETENTION_KEYS, "[retention]")
    raw_rules = retention.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError("retention.rules must be an array of tables ([[retention.rules]])")
    raw_immutable = document.get("immutable_tags", [])
    if not isinstance(raw_immutable, list):
        raise ConfigError("immutable_tags must be an array of tables ([[immutable_tags]])")
    rules = tuple(_rule(raw, i) for i, raw in enumerate(raw_rules))
    immutable = tuple(_immutable(raw, i) for i, raw in enumerate(raw_immutable))
    _unique([r.name for r in rules], "retention rules")
    _unique([r.name for r in immutable], "immutable tag rules")
    return LifecyclePolicy(
        rules=rules,
        classes=_classes(retention.get("classes", {})),
        immutable_rules=immutable,
    )
