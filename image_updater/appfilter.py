"""Which Applications a run processes: name globs and a Kubernetes-style label selector."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from image_updater.errors import ConfigError

_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


@dataclass(frozen=True)
class AppFilter:
    """Name globs (any may match; none means all) and label requirements (all must hold)."""

    names: tuple[str, ...] = ()
    requirements: tuple[Callable[[Mapping[str, str]], bool], ...] = ()

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether an Application with this name and these labels is processed."""
        if self.names and not any(fnmatch.fnmatchcase(name, glob) for glob in self.names):
            return False
        return all(req(labels) for req in self.requirements)


def parse_selector(text: str) -> tuple[Callable[[Mapping[str, str]], bool], ...]:
    """Parse ``k=v,k!=v,k,!k,k in (a,b),k notin (a)`` into predicates on a label mapping."""
    requirements: list[Callable[[Mapping[str, str]], bool]] = []
    for part in _split_selector(text):
        match = _REQ.match(part)
        if not match or (match["neg"] and (match["op"] or match["setop"])):
            raise ConfigError(f"invalid label selector requirement {part.strip()!r}", key="match_labels")
        key = match["key"]
        if match["op"] in ("=", "=="):
            value = match["value"]
            requirements.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif match["op"] == "!=":
            value = match["value"]
            requirements.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif match["setop"]:
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            if match["setop"] == "in":
                requirements.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                requirements.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif match["neg"]:
            requirements.append(lambda labels, k=key: k not in labels)
        else:
            requirements.append(lambda labels, k=key: k in labels)
    return tuple(requirements)


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def build_filter(names: Sequence[str], selector: str) -> AppFilter:
    """An :class:`AppFilter` from globs and a selector string."""
    return AppFilter(names=tuple(names), requirements=parse_selector(selector))
