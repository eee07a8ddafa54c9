"""The ``kubernetes`` source: annotated Argo CD Applications read from the Kubernetes API.

Lists ``argoproj.io/v1alpha1`` Applications across all namespaces or in a given list of namespaces,
with the label selector (``--match-application-label``) applied by the API server and the name globs
(``--match-application-name``) here, and returns the same :class:`Discovery` as the files source: the
Applications to process and, per Application, what could not be read. The label selector is checked
again here, so a server (or proxy) that ignored it cannot widen the selection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient, operators
from lightkube.types import OnErrorAction, OnErrorResult

from image_updater.adapters.files import Discovery, SourceProblem
from image_updater.adapters.k8s.client import (
    API_ERRORS,
    DEFAULT_RETRY,
    ApiRetry,
    Sleep,
    call_api,
    status_code,
    translate,
)
from image_updater.adapters.k8s.resources import Application, as_manifest, object_key
from image_updater.annotations import has_image_list, parse_application
from image_updater.appfilter import parse_selector
from image_updater.config import ApplicationsSettings
from image_updater.errors import ConfigError, ImageUpdaterError
from image_updater.model.spec import AppSpec

ALL_NAMESPACES = "*"

_REQUIREMENT = re.compile(
    r"^\s*(?:!\s*(?P<absent>[A-Za-z0-9_./-]+)|(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


def selector_pairs(text: str) -> list[tuple[str, operators.Operator[Any]]]:
    """A label selector string as lightkube's ``(key, operator)`` pairs (a key may repeat).

    Raises :class:`ConfigError` naming ``match_labels`` when the selector is malformed.
    """
    parse_selector(text)  # the product's own validation, with its error message
    pairs: list[tuple[str, operators.Operator[Any]]] = []
    depth, current, parts = 0, "", []
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    for part in (p for p in parts if p.strip()):
        m = _REQUIREMENT.match(part)
        if m is None:
            raise ConfigError(f"invalid label selector requirement {part.strip()!r}", key="match_labels")
        if m["absent"]:
            pairs.append((m["absent"], operators.not_exists()))
        elif m["op"]:
            op = operators.not_equal if m["op"] == "!=" else operators.equal
            pairs.append((m["key"], op(m["value"])))
        elif m["setop"]:
            values = [v.strip() for v in m["values"].split(",") if v.strip()]
            pairs.append((m["key"], operators.in_(values) if m["setop"] == "in" else operators.not_in(values)))
        else:
            pairs.append((m["key"], operators.exists()))
    return pairs


@dataclass(frozen=True)
class ApplicationChange:
    """An Application was added, modified or deleted (``type`` as the watch says it)."""

    type: str
    namespace: str
    name: str
    resource_version: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class KubernetesSource:
    """Annotated Applications from the Kubernetes API; one :meth:`discover` per cycle."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        namespaces: Sequence[str] = (),
        match_names: Sequence[str] = (),
        match_labels: str = "",
        retry: ApiRetry = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        page_size: int = 500,
    ) -> None:
        self._client = client
        self.namespaces = tuple(dict.fromkeys(n.strip() for n in namespaces if n.strip()))
        self.match_names = tuple(match_names)
        self.match_labels = match_labels.strip()
        # lightkube's hints say dict, but it takes (key, operator) pairs too, which a repeated key needs
        self._labels: Any = selector_pairs(self.match_labels) or None
        self._requirements = parse_selector(self.match_labels)
        self._retry = retry
        self._sleep = sleep
        self._page_size = page_size
        self._manifests: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_settings(cls, client: AsyncClient, settings: ApplicationsSettings, **options: Any) -> KubernetesSource:
        """A source for the ``applications`` settings (namespaces, match_names, match_labels)."""
        return cls(
            client,
            namespaces=settings.namespaces,
            match_names=settings.match_names,
            match_labels=settings.match_labels,
            **options,
        )

    def manifest(self, key: str) -> Mapping[str, Any] | None:
        """The raw Application ``namespace/name`` as the last :meth:`discover` read it (status included)."""
        return self._manifests.get(key)

    async def discover(self) -> Discovery:
        """List, parse and filter the Applications; a namespace or an Application that fails is a problem.

        Raises :class:`ImageUpdaterError` when the API cannot be asked at all.
        """
        apps: list[AppSpec] = []
        problems: list[SourceProblem] = []
        manifests: dict[str, dict[str, Any]] = {}
        for namespace in self.namespaces or (ALL_NAMESPACES,):
            try:
                objects = await call_api(functools.partial(self._list, namespace), retry=self._retry, sleep=self._sleep)
            except API_ERRORS as e:
                where = "all namespaces" if namespace == ALL_NAMESPACES else f"namespace {namespace}"
                error = translate(e, f"cannot list Applications in {where}", ImageUpdaterError)
                if namespace == ALL_NAMESPACES or status_code(e) not in (403, 404):
                    raise error from e
                problems.append(SourceProblem(f"kubernetes namespace {namespace}", error))
                continue
            for obj in objects:
                manifest = as_manifest(obj)
                key = object_key(manifest)
                if not has_image_list(manifest):
                    continue
                try:
                    app = parse_application(manifest, origin=key)
                except ImageUpdaterError as e:
                    problems.append(SourceProblem(key, e))
                    continue
                if not self._selected(app):
                    continue
                manifests[app.key] = manifest
                apps.append(app)
        self._manifests = manifests
        return Discovery(apps=tuple(apps), problems=tuple(problems))

    def _selected(self, app: AppSpec) -> bool:
        if self.match_names and not any(fnmatch.fnmatchcase(app.name, glob) for glob in self.match_names):
            return False
        return all(requirement(app.labels) for requirement in self._requirements)

    async def _list(self, namespace: str) -> list[dict[str, Any]]:
        listing = self._client.list(Application, namespace=namespace, labels=self._labels, chunk_size=self._page_size)
        return [dict(obj) async for obj in listing]

    async def get_manifest(self, namespace: str, name: str) -> dict[str, Any]:
        """One Application as it is now (raw), e.g. after a webhook names it."""
        try:
            obj = await call_api(
                lambda: self._client.get(Application, name, namespace=namespace), retry=self._retry, sleep=self._sleep
            )
        except API_ERRORS as e:
            raise translate(e, f"cannot read Application {namespace}/{name}", ImageUpdaterError, app=name) from e
        return as_manifest(obj)

    async def watch(self, *, resource_version: str | None = None) -> AsyncIterator[ApplicationChange]:
        """Changes of the selected Applications, as the API server streams them, until cancelled.

        A dropped stream is resumed from the last ``resourceVersion`` seen (and re-listed on ``410``)
        up to ``retry.attempts`` times in a row; then :class:`ImageUpdaterError` is raised.
        """
        queue: asyncio.Queue[ApplicationChange | BaseException] = asyncio.Queue()
        tasks = [
            asyncio.ensure_future(self._pump(ns, resource_version, queue))
            for ns in self.namespaces or (ALL_NAMESPACES,)
        ]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _pump(self, namespace: str, resource_version: str | None, queue: asyncio.Queue[Any]) -> None:
        retry = self._retry

        def on_error(error: Exception, count: int) -> OnErrorResult:
            if count >= retry.attempts:
                return OnErrorResult(OnErrorAction.RAISE)
            return OnErrorResult(OnErrorAction.RETRY, min(retry.base_backoff_s * 2 ** (count - 1), retry.max_backoff_s))

        try:
            stream = self._client.watch(
                Application,
                namespace=namespace,
                labels=self._labels,
                resource_version=resource_version,
                on_error=on_error,
            )
            async for kind, obj in stream:
                meta = obj.get("metadata") or {}
                name = str(meta.get("name", ""))
                if self.match_names and not any(fnmatch.fnmatchcase(name, g) for g in self.match_names):
                    continue
                change = ApplicationChange(
                    kind, str(meta.get("namespace", "")), name, str(meta.get("resourceVersion", ""))
                )
                await queue.put(change)
        except API_ERRORS as e:
            where = "all namespaces" if namespace == ALL_NAMESPACES else f"namespace {namespace}"
            await queue.put(translate(e, f"the watch of Applications in {where} failed", ImageUpdaterError))
