"""Repository names, tags and ``host[:port]/name[:tag][@digest]`` references.

Each grammar sits beside the text that defines it. Matching always uses
``fullmatch`` with ASCII classes: ``$`` would accept a trailing newline and
``\\w`` would accept any Unicode letter.

How a reference splits into registry and repository is docker's rule, which
every client follows: the part before the first ``/`` is a registry host if
it contains ``.`` or ``:``, is ``localhost``, or has an upper-case letter
(no repository component can); otherwise the whole string is the repository.
https://github.com/distribution/distribution/blob/v2.8.2/reference/normalize.go
(``splitDockerDomain``). Unlike docker we do not fill in ``docker.io`` or
``library/``: a reference without a host has ``registry`` None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oci.digest import Digest
from oci.errors import NameInvalid, TagInvalid

__all__ = [
    "DOMAIN",
    "NAME_MAX_LENGTH",
    "REPOSITORY",
    "TAG",
    "Reference",
    "is_digest_reference",
    "validate_repository",
    "validate_tag",
]

# distribution-spec, "Pulling manifests":
#   <name> MUST match the following regular expression:
#   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
# https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)

# Same section: "Many clients impose a limit of 255 characters on the length of
# the concatenation of the registry hostname (and optional port), /, and <name>
# value." The registry cannot know the host a client used, so it holds the name
# itself to the limit, as distribution does (reference.NameTotalLengthMax);
# Reference.parse holds the whole ``host/name`` to it, as distribution's
# reference.Parse does.
NAME_MAX_LENGTH = 255

# distribution-spec, same section:
#   <reference> as a tag MUST be at most 128 characters in length and MUST match
#   the following regular expression: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", re.ASCII)

# distribution reference/regexp.go (v2.8.2 and its IPv6 extension in v3):
#   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
#   domain-name      := domain-component ['.' domain-component]*
#   host             := domain-name | IPv4address | '[' IPv6address ']'
#   domain           := host [':' port-number]
# An IPv4 address is a domain-name of digit components, so it needs no branch.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
DOMAIN = re.compile(rf"{_HOST}(?::[0-9]+)?", re.ASCII)


def validate_repository(name: str) -> str:
    """Return ``name`` if it is a repository name the spec allows; else raise NameInvalid."""
    if not isinstance(name, str) or not name:
        raise NameInvalid("repository name is empty", detail={"name": name})
    if len(name) > NAME_MAX_LENGTH:
        raise NameInvalid(
            f"repository name {name[:40]!r}... is {len(name)} characters, "
            f"more than {NAME_MAX_LENGTH}",
            detail={"name": name},
        )
    if not REPOSITORY.fullmatch(name):
        raise NameInvalid(
            f"invalid repository name {name!r}: each /-separated component must be "
            "lower-case letters and digits, joined by '.', '_', '__' or dashes",
            detail={"name": name},
        )
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a tag the spec allows; else raise TagInvalid."""
    if not isinstance(tag, str) or not TAG.fullmatch(tag):
        raise TagInvalid(
            f"invalid tag {tag!r}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}",
            detail={"tag": tag},
        )
    return tag


def is_digest_reference(reference: str) -> bool:
    """Whether the ``<reference>`` of a manifests URL means a digest rather than a tag.

    A tag can never contain ``:`` and every digest does, so a colon is the
    whole test. Deciding by shape rather than by validity means a malformed
    digest (``sha256:abc``) is reported as DIGEST_INVALID, which is what the
    client meant, not as TAG_INVALID.
    """
    return ":" in reference


def _looks_like_host(component: str) -> bool:
    # docker's splitDockerDomain; see the module docstring.
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component.lower() != component
    )


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed ``[host[:port]/]name[:tag][@digest]``.

    Every field is validated on construction, and a Reference never holds a
    value that would print as something else, so ``Reference.parse(str(r)) == r``.
    """

    registry: str | None
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        validate_repository(self.repository)
        if self.tag is not None:
            validate_tag(self.tag)
        if self.registry is None:
            first, slash, _ = self.repository.partition("/")
            if slash and _looks_like_host(first):
                raise NameInvalid(
                    f"repository {self.repository!r} without a registry is ambiguous: "
                    f"{first!r} would be read as a host",
                    detail={"name": self.repository},
                )
        else:
            if not DOMAIN.fullmatch(self.registry):
                raise NameInvalid(
                    f"invalid registry host {self.registry!r}", detail={"name": self.registry}
                )
            if not _looks_like_host(self.registry):
                raise NameInvalid(
                    f"registry {self.registry!r} would be read as part of the repository: "
                    "a host needs a '.' or ':', or must be 'localhost'",
                    detail={"name": self.registry},
                )
            full = len(self.registry) + 1 + len(self.repository)
            if full > NAME_MAX_LENGTH:
                raise NameInvalid(
                    f"name {self.registry}/{self.repository[:40]}... is {full} characters, "
                    f"more than {NAME_MAX_LENGTH}",
                    detail={"name": f"{self.registry}/{self.repository}"},
                )

    @classmethod
    def parse(cls, value: str) -> Reference:
        """Parse a reference; raises NameInvalid, TagInvalid or DigestInvalid naming the part.

        The digest is split off at ``@`` first; then a tag is whatever follows
        the last ``:`` after the last ``/`` (a ``:`` before that is a port).
        """
        if not isinstance(value, str) or not value:
            raise NameInvalid(f"invalid reference {value!r}", detail={"reference": value})
        remainder, at, digest_part = value.partition("@")
        digest = Digest.parse(digest_part) if at else None
        tag: str | None = None
        slash = remainder.rfind("/")
        colon = remainder.rfind(":")
        if colon > slash:
            remainder, tag = remainder[:colon], remainder[colon + 1 :]
        registry: str | None = None
        first, sep, rest = remainder.partition("/")
        if sep and _looks_like_host(first):
            registry, remainder = first, rest
        return cls(registry, remainder, tag, digest)

    @property
    def reference(self) -> str | None:
        """What goes in ``/v2/<name>/manifests/<reference>``: the digest if any, since
        it pins the content, else the tag."""
        return str(self.digest) if self.digest is not None else self.tag

    @property
    def name(self) -> str:
        """``host/repository`` (or the repository alone), without tag or digest."""
        return self.repository if self.registry is None else f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out
