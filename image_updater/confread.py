"""Reading a parsed YAML config: values checked against their expected type, errors naming key and line.

The helpers of :mod:`image_updater.config`: :class:`Reader` walks one mapping of the config file,
durations are parsed by :func:`parse_duration`, and ``env:NAME`` / ``file:/path`` references are read
by :func:`resolve_secret` when a value is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from image_updater.errors import ConfigError

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_YAML11_BOOLEANS = {"yes": True, "on": True, "true": True, "no": False, "off": False, "false": False}


def parse_duration(text: str | int | float, *, key: str = "interval", line: int | None = None) -> float:
    """``2m``, ``90s``, ``1h30m``, ``500ms`` or a number of seconds -> seconds."""
    if isinstance(text, bool):
        raise ConfigError(f"{text!r} is not a duration", key=key, line=line)
    if isinstance(text, int | float):
        return float(text)
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    match = _DURATION.match(value)
    if not value or not match or not any(match.groups()):
        raise ConfigError(f"{text!r} is not a duration (use e.g. 30s, 2m, 1h30m)", key=key, line=line)
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def resolve_secret(value: str | None, *, key: str = "") -> str | None:
    """Resolve ``env:NAME`` and ``file:/path`` references; other text is returned as it is."""
    if value is None:
        return None
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set", key=key or None)
        return os.environ[name]
    if value.startswith("file:"):
        path = Path(value[5:])
        try:
            return path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}", key=key or None) from e
    return value


class Reader:
    """Checks a mapping against a dataclass's fields, naming key and line on error."""

    def __init__(self, node: Any, path: str) -> None:
        if node is None:
            node = CommentedMap()
        if not isinstance(node, Mapping):
            raise ConfigError("must be a mapping", key=path or "(top level)", line=node_line(node))
        self.node = node
        self.path = path

    def key(self, name: str) -> str:
        """The dotted name of ``name`` in this mapping, for errors."""
        return f"{self.path}.{name}" if self.path else name

    def line(self, name: str) -> int | None:
        """The 1-based line of key ``name``, when known."""
        lc = getattr(self.node, "lc", None)
        if lc is not None and name in self.node:
            try:
                return int(lc.key(name)[0]) + 1
            except (KeyError, TypeError):
                return None
        return None

    def check_known(self, allowed: set[str]) -> None:
        """Refuse keys not in ``allowed``, naming the first unknown one and its line."""
        for name in self.node:
            if name not in allowed:
                raise ConfigError(
                    f"unknown key (known here: {', '.join(sorted(allowed))})",
                    key=self.key(str(name)),
                    line=self.line(name),
                )

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        """The value of ``name`` (``default`` when absent or null), which must be of ``kind``."""
        if name not in self.node or self.node[name] is None:
            return default
        value = self.node[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(
                f"expected {_kind_names(kinds)}, got a boolean", key=self.key(name), line=self.line(name)
            )
        if not isinstance(value, kinds):
            raise ConfigError(
                f"expected {_kind_names(kinds)}, got {type(value).__name__}",
                key=self.key(name),
                line=self.line(name),
            )
        return value

    def get_list(self, name: str, item: type) -> list[Any]:
        """A list whose every item is of type ``item``."""
        value = self.get(name, (list, CommentedSeq), [])
        for index, element in enumerate(value):
            if not isinstance(element, item) or isinstance(element, bool):
                raise ConfigError(
                    f"item {index} must be {_kind_names((item,))}", key=self.key(name), line=self.line(name)
                )
        return list(value)

    def section(self, name: str) -> Reader:
        """A reader for the nested mapping ``name`` (empty when absent)."""
        return Reader(self.get(name, (dict, CommentedMap), None), self.key(name))

    def positive(self, name: str, default: int) -> int:
        """An integer of at least 1."""
        value = self.get(name, int, default)
        if value < 1:
            raise ConfigError("must be at least 1", key=self.key(name), line=self.line(name))
        return int(value)

    def port(self, name: str, default: int) -> int:
        """A TCP port, 0 meaning "not served"."""
        value = self.get(name, int, default)
        if not 0 <= value <= 65535:
            raise ConfigError("must be a port number (0-65535; 0 disables)", key=self.key(name), line=self.line(name))
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        """A boolean, also written the YAML 1.1 way (``yes``/``no``/``on``/``off``) as AIU's examples do."""
        value = self.get(name, (bool, str), default)
        if isinstance(value, str):
            if value.strip().lower() not in _YAML11_BOOLEANS:
                raise ConfigError(f"expected a boolean, got {value!r}", key=self.key(name), line=self.line(name))
            return _YAML11_BOOLEANS[value.strip().lower()]
        return bool(value)

    def duration(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        """A duration in seconds (``30s``, ``2m``, a number), at least ``minimum`` and above zero."""
        value = parse_duration(self.get(name, (str, int, float), default), key=self.key(name), line=self.line(name))
        if value <= 0 or value < minimum:
            raise ConfigError(
                f"must be at least {minimum:g}s" if minimum else "must be longer than 0",
                key=self.key(name),
                line=self.line(name),
            )
        return value


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        CommentedSeq: "a list",
        dict: "a mapping",
        CommentedMap: "a mapping",
    }
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def node_line(node: Any) -> int | None:
    """The 1-based line where a parsed YAML node starts, when known."""
    lc = getattr(node, "lc", None)
    return int(lc.line) + 1 if lc is not None and lc.line is not None else None
