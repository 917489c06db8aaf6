"""Authentication, authorization, tenants, quotas and rate limits (docs/auth.md).

``AuthMiddleware`` wraps the Starlette app when ``Settings.auth`` is on; it
finds its ``Authority`` (users, keys, policies, buckets, all in the metadata
database) on ``app.state.auth``.
"""

from __future__ import annotations

from registry.auth.authority import Authority, open_authority
from registry.auth.middleware import AuthMiddleware, principal_of
from registry.auth.policy import ROLES, Policy, Principal, allowed
from registry.auth.store import AuthStore, Tenant, User

__all__ = [
    "ROLES",
    "AuthMiddleware",
    "AuthStore",
    "Authority",
    "Policy",
    "Principal",
    "Tenant",
    "User",
    "allowed",
    "open_authority",
    "principal_of",
]
