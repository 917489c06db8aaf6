"""The lifecycle configuration: parsed from the TOML file, validated, one line per error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.config import ConfigError, load_settings
from registry.rules.policy import (
    DEFAULT_POLICY,
    FOREVER,
    TagPattern,
    format_duration,
    parse_duration,
    parse_policy,
    policy_of,
)

EXAMPLE = """
listen = "127.0.0.1:5999"

[retention.classes]
scratch = "7d"
release = "forever"

[[retention.rules]]
name = "prod"
repository = "team-a/prod/**"
keep_tags = ["v*"]
untagged_grace = "30d"

[[retention.rules]]
name = "ci"
repository = "team-a/**"
keep_last = 10
keep_tags = ["v*", "re:^release-[0-9]+$"]
expire_after = "30d"
expire_not_pulled_after = "2w"
untagged_grace = "1d12h"

[[retention.rules]]
tenant = "globex"
untagged_grace = "0s"

[[immutable_tags]]
repository = "team-a/prod/**"
tags = ["v*"]

[[immutable_tags]]
name = "all-of-acme-releases"
tenant = "acme"
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "artifact-store.toml"
    path.write_text(text)
    return str(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        policy_of(load_settings(config_file=_write(tmp_path, text), environ={}))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_example_parses_into_rules_classes_and_immutable_tags(tmp_path: Path) -> None:
    settings = load_settings(config_file=_write(tmp_path, EXAMPLE), environ={})
    policy = policy_of(settings)
    assert [rule.name for rule in policy.rules] == ["prod", "ci", "rule-3"]
    ci = policy.rules[1]
    assert ci.keep_last == 10
    assert [p.text for p in ci.keep_tags] == ["v*", "re:^release-[0-9]+$"]
    assert ci.expire_after == dt.timedelta(days=30)
    assert ci.expire_not_pulled_after == dt.timedelta(weeks=2)
    assert ci.untagged_grace == dt.timedelta(days=1, hours=12)
    assert policy.classes == {"scratch": dt.timedelta(days=7), "release": FOREVER}
    assert [rule.name for rule in policy.immutable_rules] == ["immutable-1", "all-of-acme-releases"]
    # The flat settings beside the tables still load.
    assert settings.server.listen == "127.0.0.1:5999"


def test_first_matching_rule_applies(tmp_path: Path) -> None:
    policy = policy_of(load_settings(config_file=_write(tmp_path, EXAMPLE), environ={}))

    def name(repository: str) -> str | None:
        rule = policy.rule_for(repository)
        return None if rule is None else rule.name

    assert name("team-a/prod/api") == "prod"
    assert name("team-a/prod/api/worker") == "prod"  # ** crosses components
    assert name("team-a/ci/build") == "ci"
    assert name("team-a") is None  # "team-a/**" needs a component below team-a
    assert name("globex/anything") == "rule-3"  # by tenant
    assert name("acme/app") is None


def test_immutable_tags_by_repository_pattern_and_tenant(tmp_path: Path) -> None:
    policy = policy_of(load_settings(config_file=_write(tmp_path, EXAMPLE), environ={}))
    assert policy.immutable("team-a/prod/api", "v1.2")
    assert not policy.immutable("team-a/prod/api", "latest")
    assert not policy.immutable("team-a/ci/api", "v1.2")
    # No tags listed: every tag of the selected repositories.
    assert policy.immutable("acme/app", "latest")
    assert not policy.immutable("globex/app", "latest")


def test_without_a_config_nothing_expires_and_nothing_is_immutable() -> None:
    settings = load_settings(environ={})
    assert not settings.lifecycle.policy
    policy = policy_of(settings)
    assert policy is DEFAULT_POLICY
    assert policy.rule_for("any/repository") is None
    assert not policy.immutable("any/repository", "v1")
    assert policy.class_duration("release") is None


def test_environment_and_flags_still_override_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "pull_record_seconds = 60\n" + EXAMPLE)
    settings = load_settings(
        {"listen": "127.0.0.1:7000"},
        config_file=path,
        environ={"ARTIFACT_STORE_PULL_RECORD_SECONDS": "5", "ARTIFACT_STORE_LIFECYCLE": "x"},
    )
    assert settings.server.listen == "127.0.0.1:7000"
    assert settings.lifecycle.pull_record_seconds == 5.0
    # The structured tables come from the file only; the environment cannot replace them.
    assert [rule.name for rule in policy_of(settings).rules] == ["prod", "ci", "rule-3"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[retention.rules]]\nname = "r"\nrepository = "a/**"\nexpire_after = "30 days"\n',
            "retention rule 'r': expire_after must be a duration",
        ),
        (
            '[[retention.rules]]\nname = "r"\nrepository = "a/**"\nkeep_last = -1\n',
            "retention rule 'r': keep_last must be a non-negative integer",
        ),
        (
            '[[retention.rules]]\nname = "r"\nrepository = "a/**"\nkeep_last = true\n',
            "keep_last must be a non-negative integer",
        ),
        (
            '[[retention.rules]]\nname = "r"\nkeep_last = 3\n',
            "retention rule 'r': needs repository",
        ),
        (
            '[[retention.rules]]\nname = "r"\nrepository = "a/**"\nkeep_tags = ["re:(v"]\n'
            "keep_last = 1\n",
            "retention rule 'r': keep_tags: bad regular expression",
        ),
        (
            '[[retention.rules]]\nname = "r"\nrepository = "a/**"\nkeep_tags = "v*"\n',
            "keep_tags must be a list of patterns",
        ),
        (
            '[[retention.rules]]\nname = "r"\nrepository = "a/**"\nkeep_tags = ["v*"]\n',
            "retention rule 'r': expires nothing",
        ),
        (
            '[[retention.rules]]\nname = "r"\nrepository = "a/**"\nkeep_last = 1\nkeep = 2\n',
            "retention rule 'r': unknown key 'keep'",
        ),
        (
            '[[retention.rules]]\nrepository = "A/**"\nkeep_last = 1\n',
            "retention rule 'rule-1': repository pattern 'A/**'",
        ),
        (
            '[[retention.rules]]\nname = "r"\nrepository = "a"\nkeep_last = 1\n'
            '[[retention.rules]]\nname = "r"\nrepository = "b"\nkeep_last = 1\n',
            "two retention rules are named 'r'",
        ),
        ('[retention]\nrules = "x"\n', "retention.rules must be an array of tables"),
        ("[retention]\nschedule = 1\n", "[retention]: unknown key 'schedule'"),
        ('[retention.classes]\nscratch = "soon"\n', "retention.classes.scratch must be"),
        ('[retention.classes]\n"Bad Class" = "1d"\n', "'Bad Class' is not a retention class"),
        (
            '[[immutable_tags]]\nrepository = "prod/**"\ntags = []\n',
            "immutable tags 'immutable-1': tags is empty",
        ),
        ('[[immutable_tags]]\ntags = ["v*"]\n', "immutable tags 'immutable-1': needs repository"),
        ("immutable_tags = 3\n", "immutable_tags must be an array of tables"),
    ],
)
def test_a_bad_rule_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    message = _error(tmp_path, text)
    assert expected in message
    assert message.startswith(str(tmp_path))  # names the file


def test_unknown_flat_settings_are_still_refused(tmp_path: Path) -> None:
    assert "unknown setting 'lifecycle'" in _error(tmp_path, 'lifecycle = "x"\n')


@pytest.mark.parametrize(
    ("pattern", "tag", "matches"),
    [
        ("v*", "v1.2.3", True),
        ("v*", "latest", False),
        ("release-?", "release-1", True),
        ("release-?", "release-10", False),
        ("re:^v[0-9]+$", "v12", True),
        ("re:^v[0-9]+$", "v12-rc", False),
        ("re:rc", "v1-rc1", False),  # a regular expression must match the whole tag
        ("*", "anything", True),
    ],
)
def test_tag_patterns_glob_or_regex(pattern: str, tag: str, matches: bool) -> None:
    assert TagPattern.parse(pattern, "test").matches(tag) is matches


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", dt.timedelta(days=30)),
        ("12h", dt.timedelta(hours=12)),
        ("1d12h", dt.timedelta(days=1, hours=12)),
        ("2w", dt.timedelta(weeks=2)),
        ("90m", dt.timedelta(minutes=90)),
        ("45s", dt.timedelta(seconds=45)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "30", "1h1d", "-1d", "1.5d", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_format_duration_round_trips(seconds: int) -> None:
    value = dt.timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_parse_policy_directly() -> None:
    policy = parse_policy({"immutable_tags": [{"repository": "**", "tags": ["v*"]}]})
    assert policy.immutable("x/y", "v1")
    assert policy.rules == ()
