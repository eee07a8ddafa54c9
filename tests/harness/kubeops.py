"""Paths, selectors and patches of the fake Kubernetes API server, as the real one reads them.

Request paths to resource types (and the discovery documents), label selectors
(``a=b,c!=d,e,!f,g in (h,i),j notin (k)``), field selectors on ``metadata.name`` and
``metadata.namespace``, RFC 7386 JSON merge patches and RFC 6902 JSON patches. A malformed selector
is ``400``, a JSON patch operation that fails ``422``, an unknown path ``404``, each an
:class:`~tests.harness.kubestore.ApiProblem`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.harness.kubestore import JSON, RESOURCES, ApiProblem, ResourceType, find_resource

# -- selectors --------------------------------------------------------------------------------------

_LABEL_REQ = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[A-Za-z0-9_./-]+)"
    r"|(?P<key>[A-Za-z0-9_./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?)\s*$"
)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def label_matcher(selector: str) -> Callable[[Mapping[str, str]], bool]:
    """A predicate for a label selector (``a=b,c!=d,e,!f,g in (h,i),j notin (k)``); 400 if malformed."""
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for part in _split_top_level(selector):
        m = _LABEL_REQ.match(part)
        if not m:
            raise ApiProblem(400, "BadRequest", f"unable to parse requirement: {part.strip()!r}")
        if m["not"]:
            checks.append(lambda labels, k=m["nkey"]: k not in labels)
        elif m["op"] in ("=", "=="):
            checks.append(lambda labels, k=m["key"], v=m["value"]: labels.get(k) == v)
        elif m["op"] == "!=":
            checks.append(lambda labels, k=m["key"], v=m["value"]: labels.get(k) != v)
        elif m["setop"]:
            values = {v.strip() for v in m["values"].split(",") if v.strip()}
            if m["setop"] == "in":
                checks.append(lambda labels, k=m["key"], vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=m["key"], vs=values: labels.get(k) not in vs)
        else:
            checks.append(lambda labels, k=m["key"]: k in labels)
    return lambda labels: all(check(labels) for check in checks)


_FIELDS = {"metadata.name": ("name",), "metadata.namespace": ("namespace",)}


def field_matcher(selector: str) -> Callable[[JSON], bool]:
    """A predicate for a field selector on ``metadata.name`` / ``metadata.namespace``."""
    checks: list[Callable[[JSON], bool]] = []
    for part in _split_top_level(selector):
        m = re.match(r"^\s*([a-zA-Z.]+)\s*(==|=|!=)\s*([^\s,]*)\s*$", part)
        if not m or m[1] not in _FIELDS:
            raise ApiProblem(400, "BadRequest", f'field label not supported: "{part.strip()}"')
        key = _FIELDS[m[1]][0]
        if m[2] == "!=":
            checks.append(lambda obj, k=key, v=m[3]: obj["metadata"].get(k, "") != v)
        else:
            checks.append(lambda obj, k=key, v=m[3]: obj["metadata"].get(k, "") == v)
    return lambda obj: all(check(obj) for check in checks)


# -- patches ----------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiProblem(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def _put(doc: Any, parts: list[str], value: Any, *, insert: bool) -> None:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if insert:
            if not 0 <= index <= len(parent):
                raise IndexError(index)
            parent.insert(index, value)
        else:
            parent[index] = value
    elif isinstance(parent, dict):
        if not insert and last not in parent:
            raise KeyError(last)
        parent[last] = value
    else:
        raise KeyError(last)


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        return parent.pop(int(parts[-1]))
    return parent.pop(parts[-1])


def json_patch(target: JSON, operations: Any) -> JSON:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test); 422 when an operation fails."""
    if not isinstance(operations, list):
        raise ApiProblem(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        try:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "add":
                _put(doc, parts, copy.deepcopy(op["value"]), insert=True)
            elif kind == "remove":
                _remove(doc, parts)
            elif kind == "replace":
                _put(doc, parts, copy.deepcopy(op["value"]), insert=False)
            elif kind in ("move", "copy"):
                source = _pointer(op["from"])
                value = _remove(doc, source) if kind == "move" else copy.deepcopy(_walk(doc, source))
                _put(doc, parts, value, insert=True)
            elif kind == "test":
                if _walk(doc, parts) != op["value"]:
                    raise ApiProblem(422, "Invalid", f"the server rejected our request: test failed at {op['path']}")
            else:
                raise ApiProblem(400, "BadRequest", f"unknown JSON patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiProblem(422, "Invalid", f"the server rejected our request due to an error: {op!r}: {e!r}") from e
    return doc


# -- paths ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """What a request path names: a resource type, a namespace (or all) and a name (or the collection)."""

    res: ResourceType
    namespace: str | None
    name: str | None


def route(path: str) -> Route:
    """Map ``/api/v1/...`` or ``/apis/<group>/<version>/...`` to a :class:`Route`; 404 otherwise."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    res = find_resource(group, version, rest[0]) if rest else None
    if res is None or len(rest) > 2 or (namespace is not None and not res.namespaced):
        raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
    return Route(res, namespace, rest[1] if len(rest) == 2 else None)


def discovery(path: str) -> JSON | None:
    """The answer of a discovery endpoint (``/version``, ``/api``, ``/apis``, a group version), if it is one."""
    path = path.rstrip("/")
    if path == "/version":
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    groups = sorted({(r.group, r.version) for r in RESOURCES if r.group})
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                    "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                }
                for g, v in groups
            ],
        }
    for group, version in [("", "v1"), *groups]:
        prefix = f"/apis/{group}/{version}" if group else "/api/v1"
        if path == prefix:
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            resources = [
                {"name": r.plural, "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs}
                for r in RESOURCES
                if (r.group, r.version) == (group, version)
            ]
            gv = f"{group}/{version}" if group else version
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
    return None
