"""The policy engine on its own: the pattern language, then who gets what and the tenant wall."""

from __future__ import annotations

import pytest

from registry.auth.policy import Policy, Principal, allowed, anonymous, pattern_matches

# (pattern, repository, principal's tenant, matches)
PATTERNS: list[tuple[str, str, str | None, bool]] = [
    # "*" stays inside one path component.
    ("acme/*", "acme/app", None, True),
    ("acme/*", "acme/app/sub", None, False),
    ("acme/*", "acme", None, False),
    ("*", "app", None, True),
    ("*", "acme/app", None, False),
    ("acme/*/sub", "acme/app/sub", None, True),
    ("acme/*/sub", "acme/app/deep/sub", None, False),
    ("acme/app-*", "acme/app-1", None, True),
    ("acme/app-*", "acme/app-1/sub", None, False),
    # "**" crosses components.
    ("**", "app", None, True),
    ("**", "acme/app/sub", None, True),
    ("acme/**", "acme/app", None, True),
    ("acme/**", "acme/app/sub", None, True),
    ("acme/**", "globex/app", None, False),
    ("acme/**", "acmecorp/app", None, False),
    ("**/sub", "acme/app/sub", None, True),
    ("**/sub", "acme/app/subtle", None, False),
    # Patterns match whole names, not prefixes or suffixes.
    ("acme/app", "acme/app", None, True),
    ("acme/app", "acme/app/sub", None, False),
    ("acme/app", "x/acme/app", None, False),
    # "{tenant}" is the principal's tenant; a principal without one matches nothing.
    ("{tenant}/**", "acme/app", "acme", True),
    ("{tenant}/**", "globex/app", "acme", False),
    ("{tenant}/*", "acme/app/sub", "acme", False),
    ("{tenant}/**", "acme/app", None, False),
    ("team/{tenant}", "team/acme", "acme", True),
    ("team/{tenant}", "team/globex", "acme", False),
    # Everything else is literal, regular-expression metacharacters included.
    ("acme/a.b", "acme/a.b", None, True),
    ("acme/a.b", "acme/axb", None, False),
    ("acme/app+", "acme/app", None, False),
    ("acme/app+", "acme/appp", None, False),
    ("acme/app?", "acme/ap", None, False),
    ("acme/(app|web)", "acme/app", None, False),
    ("acme/[a-z]pp", "acme/app", None, False),
    ("acme/a{2}", "acme/aa", None, False),
    ("acme/^app$", "acme/app", None, False),
    ("acme/ap\\p", "acme/app", None, False),
]


@pytest.mark.parametrize(
    ("pattern", "repository", "tenant", "matches"),
    PATTERNS,
    ids=[f"{p}~{r}@{t}" for p, r, t, _ in PATTERNS],
)
def test_pattern_matches(pattern: str, repository: str, tenant: str | None, matches: bool) -> None:
    assert pattern_matches(pattern, repository, tenant) is matches


def user(name: str, tenant: str | None, *roles: str) -> Principal:
    return Principal(name, "user", tenant, frozenset(roles))


ALICE = user("alice", "acme", "reader")
BOB = user("bob", "globex")
AUDITOR = user("auditor", None)  # registry-wide, no roles


@pytest.mark.parametrize(
    "subject",
    ["authenticated", "tenant:acme", "role:reader", "user:alice"],
)
def test_policies_grant_inside_the_tenant_and_never_across_the_wall(subject: str) -> None:
    policies = [Policy(subject, "**", frozenset({"pull", "push", "delete"}))]
    assert allowed(ALICE, "acme/app", policies) == {"pull", "push", "delete"}
    assert allowed(ALICE, "globex/app", policies) == frozenset()
    assert allowed(ALICE, "app", policies) == frozenset()  # no tenant is not alice's tenant


def test_an_authenticated_policy_reaches_every_tenant_only_for_registry_wide_principals() -> None:
    policies = [Policy("authenticated", "**", frozenset({"pull"}))]
    assert allowed(AUDITOR, "acme/app", policies) == {"pull"}
    assert allowed(AUDITOR, "globex/app", policies) == {"pull"}
    assert allowed(BOB, "globex/app", policies) == {"pull"}
    assert allowed(BOB, "acme/app", policies) == frozenset()
    assert allowed(anonymous(), "acme/app", policies) == frozenset()


def test_policies_name_only_their_subject() -> None:
    policies = [
        Policy("user:bob", "**", frozenset({"push"})),
        Policy("tenant:globex", "**", frozenset({"push"})),
        Policy("role:maintainer", "**", frozenset({"delete"})),
    ]
    assert allowed(ALICE, "acme/app", policies) == {"pull"}  # its reader role only


def test_anonymous_policies_grant_pull_to_everyone_and_nothing_more() -> None:
    policies = [Policy("anonymous", "acme/public/**", frozenset({"pull", "push", "delete"}))]
    assert allowed(anonymous(), "acme/public/tool", policies) == {"pull"}
    assert allowed(BOB, "acme/public/tool", policies) == {"pull"}  # across the wall
    assert allowed(ALICE, "acme/public/tool", policies) == {"pull"}
    assert allowed(anonymous(), "acme/app", policies) == frozenset()


def test_a_token_narrows_what_policies_grant() -> None:
    policies = [Policy("authenticated", "**", frozenset({"pull", "push"}))]
    narrowed = Principal("alice", "user", "acme", token_access={"acme/app": frozenset({"pull"})})
    assert allowed(narrowed, "acme/app", policies) == {"pull"}
    assert allowed(narrowed, "acme/other", policies) == frozenset()
