"""Authentication, authorization, tenants, quotas and rate limits (docs/auth.md).

The ``Authority`` (users, keys, policies, buckets, all in the metadata
database) decides; the HTTP side of it, the middleware that wraps the app
when ``Settings.auth`` is on and the ``/token`` endpoint, is in
``registry.http.auth`` and ``registry.http.token``.
"""

from __future__ import annotations

from registry.auth.authority import Authority, open_authority
from registry.auth.policy import ROLES, Policy, Principal, allowed
from registry.auth.store import AuthStore, Tenant, User

__all__ = [
    "ROLES",
    "AuthStore",
    "Authority",
    "Policy",
    "Principal",
    "Tenant",
    "User",
    "allowed",
    "open_authority",
]
