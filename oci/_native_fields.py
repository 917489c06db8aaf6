"""The field grammars of the native manifest, and the error that names a field.

Private to oci.native: each check takes the *wire* name of the field it checks,
so an error reads ``files[2].path has a '..' component: 'a/../b'`` whether the
manifest came from CBOR, JSON, an OCI manifest or a constructor call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from oci.digest import Digest
from oci.errors import DigestInvalid, ManifestInvalid

PATH_MAX = 4096  # UTF-8 bytes of a whole path: Linux PATH_MAX
COMPONENT_MAX = 255  # UTF-8 bytes of one component: NAME_MAX on every common filesystem
SIZE_MAX = 2**63 - 1  # sizes travel as int64 through databases and other languages
TEXT_MAX = 256
LABEL_VALUE_MAX = 65536
URL_MAX = 2048

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SLUG = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", re.ASCII)
LABEL_KEY = re.compile(r"[\x21-\x7e]+", re.ASCII)
# RFC 3339 §5.6 restricted to one spelling per instant: UTC "Z", fraction of
# 1-6 digits without trailing zeros (microseconds are what datetime holds).
TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{0,5}[1-9]))?Z"
)

MISSING: Any = object()


class NativeManifestInvalid(ManifestInvalid):
    """native manifest invalid"""

    def __init__(self, field: str, problem: str, value: Any = MISSING) -> None:
        self.field = field
        self.problem = problem
        self.value = value
        shown = "" if value is MISSING else f": {show(value)}"
        detail: dict[str, str] = {"field": field, "problem": problem}
        if value is not MISSING:
            detail["value"] = show(value)
        super().__init__(f"native manifest: {field} {problem}{shown}", detail=detail)

    def under(self, prefix: str) -> NativeManifestInvalid:
        """The same problem, named from an enclosing field (``files[2]`` + ``path``)."""
        name = f"{prefix}.{self.field}" if self.field else prefix
        return NativeManifestInvalid(name, self.problem, self.value)


def show(value: Any) -> str:
    """repr, cut short: error messages echo client input, so they must stay small."""
    shown = repr(value)
    return shown if len(shown) <= 200 else shown[:197] + "..."


@contextmanager
def within(prefix: str) -> Iterator[None]:
    try:
        yield
    except NativeManifestInvalid as e:
        raise e.under(prefix) from None


def text(name: str, value: Any, max_bytes: int = TEXT_MAX, *, controls: bool = False) -> str:
    if not isinstance(value, str):
        raise NativeManifestInvalid(name, "must be a string", value)
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate from JSON "\ud800": CBOR text must be valid UTF-8.
        raise NativeManifestInvalid(name, "is not valid Unicode text", value) from None
    if not value:
        raise NativeManifestInvalid(name, "must not be empty")
    if size > max_bytes:
        raise NativeManifestInvalid(name, f"is longer than {max_bytes} bytes", value)
    if not controls and CONTROL.search(value):
        raise NativeManifestInvalid(name, "contains a control character", value)
    return value


def slug(name: str, value: Any) -> str:
    if not SLUG.fullmatch(text(name, value, 64)):
        raise NativeManifestInvalid(name, "must match [a-z0-9]+([._-][a-z0-9]+)*", value)
    return value  # type: ignore[no-any-return]


def check_path(value: Any, name: str = "path") -> str:
    """A relative POSIX path that extracts to exactly one place on any filesystem."""
    if isinstance(value, str) and "\x00" in value:
        raise NativeManifestInvalid(name, "contains NUL", value)
    path = text(name, value, PATH_MAX)
    if "\\" in path:
        raise NativeManifestInvalid(name, "contains a backslash", path)
    if path.startswith("/"):
        raise NativeManifestInvalid(name, "is absolute", path)
    for component in path.split("/"):
        if not component:
            raise NativeManifestInvalid(name, "has an empty component", path)
        if component in (".", ".."):
            raise NativeManifestInvalid(name, f"has a {component!r} component", path)
        if len(component.encode("utf-8")) > COMPONENT_MAX:
            raise NativeManifestInvalid(name, f"has a component over {COMPONENT_MAX} bytes", path)
    return path


def format_time(value: datetime) -> str:
    """The one RFC 3339 spelling of an instant that the schema admits."""
    t = value.astimezone(UTC)
    # Not strftime: %Y does not zero-pad years before 1000 on every libc.
    out = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if t.microsecond:
        out += "." + f"{t.microsecond:06d}".rstrip("0")
    return out + "Z"


def parse_time(name: str, value: Any) -> datetime:
    match = TIME.fullmatch(text(name, value, 64))
    if match is None:
        raise NativeManifestInvalid(
            name, "is not a UTC RFC 3339 time of the form YYYY-MM-DDTHH:MM:SS[.ffffff]Z", value
        )
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((fraction or "0").ljust(6, "0")), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        raise NativeManifestInvalid(name, "is not a valid calendar time", value) from None


def utc(name: str, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise NativeManifestInvalid(name, "must be a datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise NativeManifestInvalid(name, "must be timezone-aware", value)
    return value.astimezone(UTC)


def digest_field(name: str, value: Any, algorithm: str) -> Digest:
    if isinstance(value, str):
        try:
            value = Digest.parse(value)
        except DigestInvalid:
            raise NativeManifestInvalid(name, "is not a valid digest", value) from None
    if not isinstance(value, Digest) or value.algorithm != algorithm:
        raise NativeManifestInvalid(name, f"must be a {algorithm} digest", value)
    return value
