"""The object store behind the fake Kubernetes API server (:mod:`tests.harness.kubeapi`).

Kubernetes semantics kept here, independently of the product's code: one monotonically increasing
``resourceVersion`` for the whole store (as etcd's revision), ``uid``, ``creationTimestamp`` and
``generation`` (custom resources: bumped when anything but ``metadata``/``status`` changes), no-op
writes that change nothing (no new ``resourceVersion``, no watch event), optimistic concurrency (a
write whose object carries another ``resourceVersion`` is a ``409 Conflict``), Secrets'
``stringData``, and a history of watch events (paths, selectors and patches are in
:mod:`tests.harness.kubeops`). Errors are :class:`ApiProblem`, rendered by the HTTP layer as
``Status`` objects.

Nothing here imports the product; the harness stands alone.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One REST resource the fake serves."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``applications.argoproj.io`` / ``secrets``, as the API server names it in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("argoproj.io", "v1alpha1", "applications", "Application", custom=True),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "events", "Event"),
    ResourceType("", "v1", "configmaps", "ConfigMap"),
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
)


def find_resource(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource served at ``group/version/plural``, if any."""
    for res in RESOURCES:
        if (res.group, res.version, res.plural) == (group, version, plural):
            return res
    return None


class ApiProblem(Exception):
    """A request the API server refuses; becomes a ``Status`` object with ``code`` and ``reason``."""

    def __init__(
        self, code: int, reason: str, message: str, *, details: JSON | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after

    def status(self) -> JSON:
        """The ``meta/v1 Status`` body."""
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(res: ResourceType, name: str) -> ApiProblem:
    return ApiProblem(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        details={"name": name, "group": res.group, "kind": res.plural},
    )


def conflict(res: ResourceType, name: str) -> ApiProblem:
    return ApiProblem(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": res.group, "kind": res.plural},
    )


def invalid(res: ResourceType, name: str, message: str) -> ApiProblem:
    return ApiProblem(
        422, "Invalid", f'{res.kind} "{name}" is invalid: {message}', details={"name": name, "kind": res.kind}
    )


# -- the store --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchRecord:
    """One change: ``old`` is None for ADDED, ``new`` is the deleted object for DELETED."""

    rv: int
    res: ResourceType
    type: str
    old: JSON | None
    new: JSON


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Objects by resource and ``(namespace, name)``, a global revision and the watch history.

    Thread-safe: every method takes ``lock`` (re-entrant), and ``changed`` is notified on each write.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.revision = 0
        self.history: list[WatchRecord] = []
        #: history before this revision was compacted away; older watches get 410 Gone
        self.compacted_at = 0
        self._objects: dict[ResourceType, dict[tuple[str, str], JSON]] = {res: {} for res in RESOURCES}

    # reading

    def get(self, res: ResourceType, namespace: str, name: str) -> JSON:
        with self.lock:
            obj = self._objects[res].get((namespace, name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def list(
        self,
        res: ResourceType,
        namespace: str | None,
        *,
        labels: Callable[[Mapping[str, str]], bool] | None = None,
        fields: Callable[[JSON], bool] | None = None,
    ) -> tuple[int, list[JSON]]:
        """The revision and the matching objects, in key order (as etcd returns them)."""
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for key, obj in sorted(self._objects[res].items())
                if (namespace is None or key[0] == namespace) and matches(obj, labels, fields)
            ]
            return self.revision, items

    # writing

    def create(self, res: ResourceType, namespace: str, obj: JSON, *, dry_run: bool = False) -> JSON:
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ApiProblem(400, "BadRequest", "metadata must be an object")
            self._check_kind(res, obj)
            if res.namespaced:
                if meta.get("namespace") not in (None, "", namespace):
                    raise ApiProblem(
                        400,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise invalid(res, "", "metadata.name: Required value: name or generateName is required")
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta["name"]
            if meta.get("resourceVersion"):
                raise invalid(res, name, "metadata.resourceVersion: Invalid value: must not be set on create")
            key = (meta.get("namespace", ""), name)
            if key in self._objects[res]:
                raise ApiProblem(
                    409,
                    "AlreadyExists",
                    f'{res.qualified} "{name}" already exists',
                    details={"name": name, "group": res.group, "kind": res.plural},
                )
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            if res.custom:
                meta["generation"] = 1
            _normalise(res, obj)
            if dry_run:
                meta["resourceVersion"] = str(self.revision)
                return obj
            return self._commit(res, key, None, obj)

    def update(self, res: ResourceType, namespace: str, name: str, new: JSON, *, dry_run: bool = False) -> JSON:
        """Store ``new`` in place of the current object, checking ``metadata.resourceVersion``."""
        with self.lock:
            key = (namespace if res.namespaced else "", name)
            old = self._objects[res].get(key)
            if old is None:
                raise not_found(res, name)
            new = copy.deepcopy(new)
            self._check_kind(res, new)
            meta = new.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise ApiProblem(400, "BadRequest", "the name of the object does not match the name on the URL")
            sent_rv = meta.get("resourceVersion")
            if sent_rv:
                if str(sent_rv) != old["metadata"]["resourceVersion"]:
                    raise conflict(res, name)
            elif res.custom:
                raise invalid(
                    res, name, "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                )
            for field in ("uid", "creationTimestamp", "namespace", "name", "resourceVersion", "generation"):
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            _normalise(res, new)
            if _same(old, new):
                return copy.deepcopy(old)
            if res.custom and _spec_of(old) != _spec_of(new):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
            if dry_run:
                return new
            return self._commit(res, key, old, new)

    def delete(self, res: ResourceType, namespace: str, name: str) -> JSON:
        with self.lock:
            key = (namespace if res.namespaced else "", name)
            old = self._objects[res].pop(key, None)
            if old is None:
                raise not_found(res, name)
            self.revision += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self.revision)
            self.history.append(WatchRecord(self.revision, res, "DELETED", old, gone))
            self.changed.notify_all()
            return gone

    def compact(self) -> None:
        """Forget the watch history so far (as etcd compaction does): older watches get 410 Gone."""
        with self.lock:
            self.history.clear()
            self.compacted_at = self.revision

    def events_after(self, rv: int) -> list[WatchRecord]:
        with self.lock:
            return [record for record in self.history if record.rv > rv]

    def _commit(self, res: ResourceType, key: tuple[str, str], old: JSON | None, new: JSON) -> JSON:
        self.revision += 1
        new["metadata"]["resourceVersion"] = str(self.revision)
        self._objects[res][key] = new
        self.history.append(WatchRecord(self.revision, res, "ADDED" if old is None else "MODIFIED", old, new))
        self.changed.notify_all()
        return copy.deepcopy(new)

    @staticmethod
    def _check_kind(res: ResourceType, obj: JSON) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if (kind and kind != res.kind) or (api_version and api_version != res.api_version):
            raise ApiProblem(
                400,
                "BadRequest",
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({res.api_version})",
            )

    def iter_all(self) -> Iterator[tuple[ResourceType, JSON]]:
        with self.lock:
            for res, objects in self._objects.items():
                for obj in objects.values():
                    yield res, copy.deepcopy(obj)


def matches(
    obj: JSON, labels: Callable[[Mapping[str, str]], bool] | None, fields: Callable[[JSON], bool] | None
) -> bool:
    """Whether an object passes the label and field predicates."""
    if labels is not None and not labels(obj["metadata"].get("labels") or {}):
        return False
    return fields is None or fields(obj)


def _normalise(res: ResourceType, obj: JSON) -> None:
    """What the API server does to every write of these types."""
    if res.kind == "Secret" and obj.get("stringData"):
        data = dict(obj.get("data") or {})
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    for key in ("labels", "annotations"):
        if obj["metadata"].get(key) == {}:
            del obj["metadata"][key]


def _spec_of(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _same(old: JSON, new: JSON) -> bool:
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)
