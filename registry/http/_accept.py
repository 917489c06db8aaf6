"""Manifest ``Accept`` negotiation: may a stored manifest answer this request?

A registry stores a manifest's bytes as pushed and cannot convert between
formats, so negotiation is yes or no: the stored media type is served if the
request's ``Accept`` allows it, and otherwise the manifest is reported
unknown (404 ``MANIFEST_UNKNOWN``), as distribution does when, say, a client
that accepts only Docker schema 2 asks for a tag that names an OCI index
(registry/handlers/manifests.go). The spec asks clients to send ``Accept``
and registries to answer with the manifest's type in ``Content-Type``:
https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests

The rule, from RFC 9110 section 12.5.1 (docs/conformance.md, "Manifest
content negotiation"):

- every ``Accept`` line counts, each split on commas (skopeo and podman send
  one line per type, oras one line listing them all);
- the most specific range that matches decides: ``type/subtype`` over
  ``type/*`` over ``*/*``; its ``q=0`` refuses, any other q allows;
- a request without ``Accept``, or whose ``Accept`` holds no well-formed
  range, takes the stored type. Distribution refuses OCI types in that case;
  we do not, because curl, scripts and Go's default client send no header.

Parameters other than ``q`` are ignored; types compare case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["acceptable"]

# type "/" subtype, each an RFC 9110 token (section 5.6.2).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_RANGE = re.compile(rf"({_TOKEN})/({_TOKEN})")
# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), section 12.4.2
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


def _range(element: str) -> tuple[str, str, bool] | None:
    """(type, subtype, allows) of one ``media-range [; params]``; None if malformed."""
    media_range, *params = element.split(";")
    match = _RANGE.fullmatch(media_range.strip())
    if match is None:
        return None
    allows = True
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            value = value.strip()
            if not _QVALUE.fullmatch(value):
                return None
            allows = float(value) > 0
            break  # what follows q is an accept-ext, which we ignore
    return match[1].lower(), match[2].lower(), allows


def _ranges(lines: Iterable[str]) -> list[tuple[str, str, bool]]:
    """Every well-formed range of every line."""
    parsed = (_range(element) for line in lines for element in line.split(","))
    return [found for found in parsed if found is not None]


def acceptable(accept_lines: Iterable[str], media_type: str) -> bool:
    """Whether a response of ``media_type`` satisfies the request's ``Accept`` lines."""
    ranges = _ranges(accept_lines)
    if not ranges or not media_type:
        return True
    kind, _, subtype = media_type.partition(";")[0].strip().lower().partition("/")
    best, verdict = 0, False
    for range_type, range_subtype, allows in ranges:
        if range_type == kind and range_subtype == subtype:
            specificity = 3
        elif range_type == kind and range_subtype == "*":
            specificity = 2
        elif range_type == "*" and range_subtype == "*":
            specificity = 1
        else:
            continue
        if specificity > best:
            best, verdict = specificity, allows
        elif specificity == best:
            # The same range twice: allowed if either allows (RFC 9110 leaves
            # this open; refusing what one line offers would break the client).
            verdict = verdict or allows
    return verdict
