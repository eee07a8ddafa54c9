"""An in-process fake Kubernetes API server speaking the real REST/JSON over HTTP on 127.0.0.1.

There is no kube-apiserver to be had on these machines, and PyPI's ``kmock`` keeps no
``resourceVersion``; this fake does, so optimistic concurrency, watches that resume and leader
election behave as against a cluster. It serves, for Applications (``argoproj.io/v1alpha1``,
a custom resource), Secrets, Events, ConfigMaps, Namespaces and Leases (``coordination.k8s.io/v1``):

- discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``;
- ``GET`` list (one namespace or all, ``labelSelector``, ``fieldSelector``, ``limit``/``continue``),
  get, and watch (``?watch=1``: a chunked stream of ``ADDED``/``MODIFIED``/``DELETED`` lines from a
  ``resourceVersion``, or the current objects as ``ADDED`` first; ``timeoutSeconds``; an object that
  stops matching the selector is ``DELETED`` to that watch; ``410 Gone`` after :meth:`compact`);
- ``POST`` create, ``PUT`` replace, ``DELETE``, and ``PATCH`` as merge patch, JSON patch,
  strategic merge (built-in types only, applied as a merge patch; custom resources answer ``415`` as
  the real server does) and server-side apply (create-or-merge, no field ownership);
- ``409 Conflict`` whenever the written object carries a ``metadata.resourceVersion`` that is not the
  current one (a patch may carry it to make itself conditional);
- bearer-token authentication (``401`` without it), ``?dryRun=All``, errors as ``Status`` objects with
  ``Content-Type: application/json``.

Tests reach the store directly (:attr:`FakeKubeApi.store`) to play the other writers (Argo CD, a
user with kubectl), read :attr:`FakeKubeApi.requests`, and add :meth:`FakeKubeApi.before` hooks
that run before a request is served (to change an object in between, or answer ``429``/``500``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ruamel.yaml import YAML

from tests.harness.kubeops import Route, discovery, field_matcher, json_patch, label_matcher, merge_patch, route
from tests.harness.kubestore import JSON, ApiProblem, Store, matches

TOKEN = "fake-kube-token"
MERGE, JSONPATCH, STRATEGIC, APPLY = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)
    #: the status answered (0 until answered; 200 for a watch stream)
    status: int = 0


@dataclass
class Reply:
    """What a :meth:`FakeKubeApi.before` hook answers instead of the server."""

    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


Hook = Callable[[RecordedRequest], "Reply | None"]


class FakeKubeApi:
    """The server; start on construction, :meth:`close` to stop (also a context manager)."""

    def __init__(self, *, token: str | None = TOKEN, watch_timeout_s: float = 30.0) -> None:
        self.store = Store()
        self.token = token
        self.watch_timeout_s = watch_timeout_s
        self.requests: list[RecordedRequest] = []
        self._hooks: list[Hook] = []
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kube-api", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FakeKubeApi:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def kubeconfig(self, namespace: str = "default") -> JSON:
        """A kubeconfig (as a dict) pointing at this server with its bearer token."""
        user: JSON = {"token": self.token} if self.token else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": user}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        }

    def before(self, hook: Hook) -> Hook:
        """Run ``hook`` before each request; a :class:`Reply` it returns is sent instead. A hook may
        change ``request.query`` (the server then serves the changed query)."""
        self._hooks.append(hook)
        return hook

    def requests_to(self, method: str, path_part: str = "") -> list[RecordedRequest]:
        """The recorded requests with this method whose path contains ``path_part``."""
        return [r for r in list(self.requests) if r.method == method and path_part in r.path]

    def close(self) -> None:
        """Stop serving; open watches end and kept-alive connections are cut."""
        self._stopping.set()
        with self.store.lock:
            self.store.changed.notify_all()
        self._httpd.shutdown()
        with self._conn_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- serving ------------------------------------------------------------------------------------

    def _serve(self, handler: _Handler, method: str) -> None:
        split = urlsplit(handler.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        request = RecordedRequest(method, split.path, query, content_type, None, dict(handler.headers.items()))
        self.requests.append(request)
        handler.recorded = request
        if self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
            handler.send_json(401, ApiProblem(401, "Unauthorized", "Unauthorized").status())
            return
        try:
            request.body = _decode_body(raw, content_type)
        except ApiProblem as problem:
            handler.send_json(problem.code, problem.status())
            return
        for hook in list(self._hooks):
            reply = hook(request)
            if reply is not None:
                handler.send_json(reply.status, reply.body, reply.headers)
                return
        try:
            document = discovery(split.path)
            if document is not None:
                handler.send_json(200, document)
                return
            where = route(split.path)
            if method == "GET" and query.get("watch") in ("1", "true"):
                self._watch(handler, where, query)
                return
            status, answer = self._dispatch(method, where, query, request)
            handler.send_json(status, answer)
        except ApiProblem as problem:
            headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after else {}
            handler.send_json(problem.code, problem.status(), headers)

    def _dispatch(self, method: str, route: Route, query: dict[str, str], request: RecordedRequest) -> tuple[int, JSON]:
        res, ns, name, store = route.res, route.namespace, route.name, self.store
        dry_run = query.get("dryRun") == "All"
        if name is None:
            if method == "GET":
                return 200, self._list(route, query)
            if method == "POST":
                if ns is None and res.namespaced:
                    raise ApiProblem(405, "MethodNotAllowed", "create needs a namespace")
                return 201, store.create(res, ns or "", _object(request.body), dry_run=dry_run)
            raise ApiProblem(405, "MethodNotAllowed", f"{method} is not supported on a collection here")
        key_ns = ns or ""
        if method == "GET":
            return 200, store.get(res, key_ns, name)
        if method == "PUT":
            return 200, store.update(res, key_ns, name, _object(request.body), dry_run=dry_run)
        if method == "DELETE":
            store.delete(res, key_ns, name)
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name},
            }
        if method == "PATCH":
            return self._patch(route, request, query, dry_run=dry_run)
        raise ApiProblem(405, "MethodNotAllowed", f"{method} is not supported")

    def _patch(
        self, route: Route, request: RecordedRequest, query: dict[str, str], *, dry_run: bool
    ) -> tuple[int, JSON]:
        res, ns, name = route.res, route.namespace or "", route.name or ""
        kind = request.content_type
        with self.store.lock:
            if kind == APPLY:
                if not query.get("fieldManager"):
                    raise ApiProblem(422, "Invalid", "fieldManager: Required value: is required for apply patch")
                try:
                    current = self.store.get(res, ns, name)
                except ApiProblem as problem:
                    if problem.code != 404:
                        raise
                    return 201, self.store.create(res, ns, _object(request.body), dry_run=dry_run)
                return 200, self.store.update(
                    res, ns, name, merge_patch(current, _object(request.body)), dry_run=dry_run
                )
            current = self.store.get(res, ns, name)
            if kind == MERGE or (kind == STRATEGIC and not res.custom):
                patched = merge_patch(current, _object(request.body))
            elif kind == JSONPATCH:
                patched = json_patch(current, request.body)
            else:
                raise ApiProblem(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{JSONPATCH}, {MERGE}, {APPLY}",
                )
            if not isinstance(patched, dict):
                raise ApiProblem(422, "Invalid", "the patched object is not an object")
            return 200, self.store.update(res, ns, name, patched, dry_run=dry_run)

    def _list(self, route: Route, query: dict[str, str]) -> JSON:
        labels = label_matcher(query["labelSelector"]) if query.get("labelSelector") else None
        fields = field_matcher(query["fieldSelector"]) if query.get("fieldSelector") else None
        revision, items = self.store.list(route.res, route.namespace, labels=labels, fields=fields)
        meta: JSON = {"resourceVersion": str(revision)}
        if query.get("continue"):
            start = json.loads(base64.urlsafe_b64decode(query["continue"]))["after"]
            items = [i for i in items if [i["metadata"].get("namespace", ""), i["metadata"]["name"]] > start]
        limit = int(query.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = {"after": [last.get("namespace", ""), last["name"]]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if not route.res.custom:
            for item in items:  # built-in types leave kind and apiVersion out of list items
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return {"kind": f"{route.res.kind}List", "apiVersion": route.res.api_version, "metadata": meta, "items": items}

    def _watch(self, handler: _Handler, route: Route, query: dict[str, str]) -> None:
        labels = label_matcher(query["labelSelector"]) if query.get("labelSelector") else None
        fields = field_matcher(query["fieldSelector"]) if query.get("fieldSelector") else None
        timeout = float(query.get("timeoutSeconds") or self.watch_timeout_s)
        deadline = time.monotonic() + timeout
        store = self.store
        since = query.get("resourceVersion") or ""
        if not since.isdigit() and since != "":
            raise ApiProblem(400, "BadRequest", f"invalid resourceVersion {since!r}")
        handler.start_stream()
        with store.lock:
            if since in ("", "0"):
                cursor = store.revision
                initial = store.list(route.res, route.namespace, labels=labels, fields=fields)[1]
                lines = [{"type": "ADDED", "object": obj} for obj in initial]
            elif int(since) < store.compacted_at:
                gone = ApiProblem(410, "Expired", f"too old resource version: {since} ({store.compacted_at})")
                handler.write_chunk({"type": "ERROR", "object": gone.status()})
                handler.end_stream()
                return
            else:
                cursor, lines = int(since), []
        try:
            for line in lines:
                handler.write_chunk(line)
            while not self._stopping.is_set():
                with store.lock:
                    records = store.events_after(cursor)
                    while not records and not self._stopping.is_set():
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        store.changed.wait(min(remaining, 0.5))
                        records = store.events_after(cursor)
                if not records:
                    break
                for record in records:
                    cursor = record.rv
                    event = _watch_event(record, route, labels, fields)
                    if event is not None:
                        handler.write_chunk(event)
            handler.end_stream()
        except (BrokenPipeError, ConnectionResetError, OSError):
            handler.close_connection = True

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conn_lock:
            (self._connections.add if add else self._connections.discard)(conn)


def _watch_event(
    record: Any, route: Route, labels: Callable[..., bool] | None, fields: Callable[..., bool] | None
) -> JSON | None:
    """The event a watch on ``route`` sees for a change, if any (selector transitions included)."""
    if record.res != route.res:
        return None
    ns = record.new["metadata"].get("namespace")
    if route.namespace is not None and ns != route.namespace:
        return None
    now = matches(record.new, labels, fields)
    before = record.old is not None and matches(record.old, labels, fields)
    if record.type == "DELETED":
        return {"type": "DELETED", "object": record.new} if before else None
    if record.type == "ADDED":
        return {"type": "ADDED", "object": record.new} if now else None
    if now and before:
        return {"type": "MODIFIED", "object": record.new}
    if now:
        return {"type": "ADDED", "object": record.new}
    if before:
        return {"type": "DELETED", "object": record.new}
    return None


def _decode_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    try:
        if content_type == APPLY:
            return YAML(typ="safe").load(raw.decode())  # JSON is YAML, so both forms of apply work
        return json.loads(raw)
    except Exception as e:
        raise ApiProblem(400, "BadRequest", f"the body of the request could not be decoded: {e}") from e


def _object(body: Any) -> JSON:
    if not isinstance(body, dict):
        raise ApiProblem(400, "BadRequest", "the request body must be a JSON object")
    return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away mid-answer (a killed replica) is no server error
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], handler: type[_Handler], api: FakeKubeApi) -> None:
        self.api = api
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body in two writes meet delayed ACKs: 40 ms each
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.api._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests instead
        pass

    def do_GET(self) -> None:
        self.server.api._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.api._serve(self, "POST")

    def do_PUT(self) -> None:
        self.server.api._serve(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.api._serve(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server.api._serve(self, "DELETE")

    recorded: RecordedRequest | None = None

    def send_json(self, status: int, body: JSON, headers: dict[str, str] | None = None) -> None:
        if self.recorded is not None:
            self.recorded.status = status
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")  # exactly this: clients compare it
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        if self.recorded is not None:
            self.recorded.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True

    def write_chunk(self, event: JSON) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
