"""A parser for ``WWW-Authenticate`` challenges (RFC 7235 section 4.1, RFC 6750 section 3).

Registries answer ``Bearer realm="https://auth.example/token",service="registry.example",
scope="repository:team/web:pull"`` or ``Basic realm="Registry Realm"``. One header may carry several
challenges, quoted values may contain commas and escaped quotes, and scheme and parameter names are
case-insensitive; the parser is lenient with unquoted values (a bare URL as realm).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SPACE = " \t"


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge: a lower-case scheme and its parameters (lower-case names)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        """The ``realm`` parameter (for Bearer: the token endpoint URL)."""
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        """The ``service`` parameter to pass to the token endpoint."""
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The space-separated entries of the ``scope`` parameter."""
        return tuple(self.params.get("scope", "").split())

    @property
    def error(self) -> str | None:
        """The ``error`` parameter (``invalid_token``, ``insufficient_scope``), if any."""
        return self.params.get("error")


def parse_challenges(values: str | Iterable[str]) -> list[Challenge]:
    """Parse one ``WWW-Authenticate`` value, or several, into challenges in order of appearance.

    Text that cannot be read as a challenge is skipped rather than raised: a registry's odd header
    must not hide a challenge that follows it.
    """
    texts = [values] if isinstance(values, str) else list(values)
    challenges: list[Challenge] = []
    for text in texts:
        challenges.extend(_Parser(text).challenges())
    return challenges


def find_challenge(challenges: Iterable[Challenge], scheme: str) -> Challenge | None:
    """The first challenge of ``scheme`` (case-insensitive), or ``None``."""
    wanted = scheme.lower()
    return next((c for c in challenges if c.scheme == wanted), None)


class _Parser:
    """A cursor over one header value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def challenges(self) -> list[Challenge]:
        found: list[Challenge] = []
        while True:
            self._skip(_SPACE + ",")
            if self.pos >= len(self.text):
                return found
            scheme = self._match(_TOKEN)
            if scheme is None:
                self._skip_past_comma()
                continue
            self._skip(_SPACE)
            token68 = self._token68()
            params = {} if token68 is not None else self._params()
            found.append(Challenge(scheme=scheme.lower(), params=params, token68=token68))

    def _token68(self) -> str | None:
        start = self.pos
        value = self._match(_TOKEN68)
        if value is not None:
            self._skip(_SPACE)
            if self.pos >= len(self.text) or self.text[self.pos] == ",":
                return value
        self.pos = start
        return None

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        while True:
            self._skip(_SPACE + ",")
            start = self.pos
            name = self._match(_TOKEN)
            if name is None:
                return params
            self._skip(_SPACE)
            if not self.text.startswith("=", self.pos):
                # A token not followed by "=" starts the next challenge.
                self.pos = start
                return params
            self.pos += 1
            self._skip(_SPACE)
            params.setdefault(name.lower(), self._value())
            self._skip(_SPACE)
            if self.pos < len(self.text) and self.text[self.pos] != ",":
                self._skip_past_comma()

    def _value(self) -> str:
        if self.text.startswith('"', self.pos):
            return self._quoted()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _SPACE + ",":
            self.pos += 1
        return self.text[start : self.pos]

    def _quoted(self) -> str:
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                chars.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            else:
                chars.append(char)
        return "".join(chars)

    def _match(self, pattern: re.Pattern[str]) -> str | None:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group(0)

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def _skip_past_comma(self) -> None:
        comma = self.text.find(",", self.pos)
        self.pos = len(self.text) if comma < 0 else comma + 1
