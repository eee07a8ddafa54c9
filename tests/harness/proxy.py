"""An in-process HTTP proxy in front of a registry: tag-list pagination, fault injection, counters.

distribution 2.8 ignores ``?n=`` on ``/v2/<name>/tags/list`` and never sends a ``Link`` header, so
:class:`RegistryProxy` pages the tag list itself the way Docker Hub does. It is also the place to
inject 429/503 answers, latency, truncated bodies and connection resets (:class:`Fault`), and it
counts requests by kind so tests can assert how many calls a client made.

The registry's ``WWW-Authenticate`` realm is passed through untouched: token requests go straight to
the token server, not through the proxy.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import httpx

#: Request kinds counted by :class:`RegistryProxy`.
KINDS: tuple[str, ...] = ("ping", "tags", "manifest", "blob", "token", "other")

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}

_TAGS_RE = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_MANIFEST_RE = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB_RE = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<rest>.+)$")


@dataclass
class RequestInfo:
    """What the fault hook sees about one request (and what :attr:`RegistryProxy.requests` records).

    ``headers`` has lower-case names; ``seq`` numbers requests through the proxy from 1; ``status`` is
    filled in once the proxy has answered (None for a reset connection).
    """

    method: str
    path: str
    query: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    kind: str
    repo: str | None
    reference: str | None
    body: bytes
    seq: int
    status: int | None = None

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        return self.headers.get(name.lower())


@dataclass
class Fault:
    """What to do instead of (or on top of) a normal forward.

    * ``reset=True``: after ``delay_s``, abort the connection with a TCP RST and answer nothing.
    * ``status`` set: answer ``status`` with ``headers`` and ``body`` without asking the upstream.
    * ``status`` None: forward as usual, then add/override ``headers`` on the upstream answer
      (e.g. a ``Link`` to another host).
    * ``truncate_to=N``: send the full ``Content-Length`` but only the first N body bytes, then close.
    * ``delay_s``: sleep before answering (on top of the proxy-wide :attr:`RegistryProxy.delay_s`).
    """

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | None = None
    delay_s: float = 0.0
    reset: bool = False
    truncate_to: int | None = None


FaultHook = Callable[[RequestInfo], Fault | None]


def fault_sequence(*faults: Fault | None, kind: str | None = None) -> FaultHook:
    """A fault hook that answers matching requests with ``faults`` in order, then forwards normally.

    ``kind`` limits it to one request kind (``"tags"``, ``"manifest"``, ...). ``None`` entries let a
    request through, so ``fault_sequence(None, Fault(503))`` fails only the second matching request.
    """
    pending = list(faults)
    lock = threading.Lock()

    def hook(info: RequestInfo) -> Fault | None:
        if kind is not None and info.kind != kind:
            return None
        with lock:
            return pending.pop(0) if pending else None

    return hook


def too_many_requests(retry_after: float | str = 1, *, body: str | None = None) -> Fault:
    """A 429 with ``Retry-After`` (seconds) and a registry-style error body."""
    text = body or '{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limited by test proxy"}]}'
    return Fault(status=429, headers={"Retry-After": str(retry_after), "Content-Type": "application/json"}, body=text)


def unavailable(*, retry_after: float | str | None = None) -> Fault:
    """A 503 with a registry-style error body (and optional ``Retry-After``)."""
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Fault(
        status=503,
        headers=headers,
        body='{"errors":[{"code":"UNAVAILABLE","message":"service unavailable (test proxy)"}]}',
    )


class _HasUrl(Protocol):
    url: str


def classify(method: str, path: str) -> tuple[str, str | None, str | None]:
    """Return ``(kind, repository, reference)`` for a registry API path."""
    if path in ("/v2", "/v2/"):
        return "ping", None, None
    if path.rstrip("/").endswith("/token") and not path.startswith("/v2/"):
        return "token", None, None
    m = _TAGS_RE.match(path)
    if m:
        return "tags", m["name"], None
    m = _MANIFEST_RE.match(path)
    if m:
        kind = "manifest" if method in ("GET", "HEAD") else "other"
        return kind, m["name"], m["ref"]
    m = _BLOB_RE.match(path)
    if m:
        return "blob", m["name"], m["rest"]
    return "other", None, None


class RegistryProxy:
    """Threaded HTTP/1.1 (keep-alive) proxy on 127.0.0.1 in front of ``upstream`` (a URL or server).

    Mutable attributes tests may set at any time: :attr:`page_size` (force this page size on
    tags/list), :attr:`paginate` (False: pass tags/list through untouched), :attr:`delay_s` (latency
    added to every request), :attr:`fault` (hook, see :class:`Fault`), :attr:`rewrite_realm`
    (replace the ``realm`` in ``WWW-Authenticate``; normally None).

    Counters (:attr:`counts`, :meth:`count`, :meth:`reset_counts`) use the kinds in :data:`KINDS`;
    ``manifest`` counts GET/HEAD only (a manifest PUT/DELETE is ``other``). Every request is also
    kept in :attr:`requests` as a :class:`RequestInfo` with its answered status.
    The client's ``Host`` header is forwarded (``preserve_host``), so upload ``Location`` URLs the
    registry builds point back at the proxy.
    """

    def __init__(
        self,
        upstream: str | _HasUrl,
        *,
        page_size: int | None = None,
        delay_s: float = 0.0,
        fault: FaultHook | None = None,
        paginate: bool = True,
        preserve_host: bool = True,
        rewrite_realm: str | None = None,
        record_bodies: bool = False,
    ) -> None:
        self.upstream = (upstream if isinstance(upstream, str) else upstream.url).rstrip("/")
        self.page_size = page_size
        self.delay_s = delay_s
        self.fault = fault
        self.paginate = paginate
        self.preserve_host = preserve_host
        self.rewrite_realm = rewrite_realm
        self.record_bodies = record_bodies
        self.requests: list[RequestInfo] = []
        self._counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._lock = threading.Lock()
        self._seq = 0
        self._client = httpx.Client(
            timeout=httpx.Timeout(30.0),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self._httpd = _Server(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = int(self._httpd.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="registry-proxy", daemon=True
        )
        self._thread.start()

    # -- counters ---------------------------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """Requests seen so far, by kind (every kind in :data:`KINDS` is present)."""
        with self._lock:
            return dict(self._counts)

    def count(self, kind: str) -> int:
        """Requests seen so far of one kind."""
        with self._lock:
            return self._counts.get(kind, 0)

    @property
    def total(self) -> int:
        """All requests seen so far."""
        with self._lock:
            return sum(self._counts.values())

    def reset_counts(self) -> None:
        """Zero the counters and forget the recorded requests."""
        with self._lock:
            self._counts = dict.fromkeys(KINDS, 0)
            self.requests.clear()

    def _register(self, info_args: dict[str, Any]) -> RequestInfo:
        with self._lock:
            self._seq += 1
            info = RequestInfo(seq=self._seq, **info_args)
            self._counts[info.kind] = self._counts.get(info.kind, 0) + 1
            self.requests.append(info)
            return info

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving and close the upstream client."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._client.close()

    def __enter__(self) -> RegistryProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding -------------------------------------------------------------------------------

    def forward(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request upstream; return ``(status, headers, raw body)`` (body still encoded)."""
        url = self.upstream + path + (f"?{query}" if query else "")
        out = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]
        if not self.preserve_host:
            out = [(k, v) for k, v in out if k.lower() != "host"]
        request = self._client.build_request(method, url, headers=out, content=body if body else None)
        response = self._client.send(request, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
        resp_headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
        return response.status_code, resp_headers, raw

    def paginate_tags(
        self, info: RequestInfo, headers: list[tuple[str, str]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Fetch the full tag list upstream and return one sorted page with a Docker Hub style Link."""
        # Ask for an identity-encoded body: the proxy has to parse it.
        plain = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
        status, resp_headers, raw = self.forward("GET", info.path, "", plain, b"")
        if status != 200 or not self.paginate:
            return status, resp_headers, raw
        try:
            doc = json.loads(raw)
        except ValueError:
            return status, resp_headers, raw
        tags = doc.get("tags")
        if tags is None:
            return status, resp_headers, raw
        ordered = sorted(tags)
        last = info.params["last"][0] if info.params.get("last") else None
        if last is not None:
            ordered = [t for t in ordered if t > last]
        n: int | None = self.page_size
        if n is None and info.params.get("n"):
            try:
                n = int(info.params["n"][0])
            except ValueError:
                body = b'{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results"}]}'
                return 400, [("Content-Type", "application/json")], body
        link: str | None = None
        if n is not None:
            page = ordered[: max(n, 0)]
            if page and len(ordered) > len(page):
                nxt = urllib.parse.quote(page[-1], safe="")
                link = f'</v2/{doc.get("name", info.repo)}/tags/list?n={n}&last={nxt}>; rel="next"'
        else:
            page = ordered
        body = json.dumps({"name": doc.get("name", info.repo), "tags": page}).encode()
        skip = {"content-length", "content-type", "link", "content-encoding"}
        out = [(k, v) for k, v in resp_headers if k.lower() not in skip]
        out.append(("Content-Type", "application/json; charset=utf-8"))
        if link:
            out.append(("Link", link))
        return 200, out, body


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: ten clients connecting at once would see SYNs
    # dropped and retried a second later, a delay that is the proxy's, not the client's
    request_queue_size = 128


def _merge_headers(base: list[tuple[str, str]], extra: Mapping[str, str]) -> list[tuple[str, str]]:
    names = {k.lower() for k in extra}
    return [(k, v) for k, v in base if k.lower() not in names] + list(extra.items())


def _make_handler(proxy: RegistryProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60  # idle keep-alive connections are dropped after a minute

        def setup(self) -> None:
            """Disable Nagle: headers and body go out in separate writes (avoids 40 ms stalls)."""
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log."""

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reset(self) -> None:
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass

        def _respond(
            self,
            info: RequestInfo,
            status: int,
            headers: list[tuple[str, str]],
            body: bytes,
            truncate_to: int | None,
        ) -> None:
            if proxy.rewrite_realm:
                headers = [
                    (k, re.sub(r'realm="[^"]*"', f'realm="{proxy.rewrite_realm}"', v))
                    if k.lower() == "www-authenticate"
                    else (k, v)
                    for k, v in headers
                ]
            info.status = status
            self.send_response_only(status)
            is_head = self.command == "HEAD"
            if is_head and not any(k.lower() == "content-length" for k, _ in headers):
                headers = [*headers, ("Content-Length", str(len(body)))]
            for k, v in headers:
                if k.lower() == "content-length" and not is_head:
                    continue
                self.send_header(k, v)
            no_body = is_head or status in (204, 304) or 100 <= status < 200
            if not is_head and not no_body:
                self.send_header("Content-Length", str(len(body)))
            elif not is_head:
                self.send_header("Content-Length", "0")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if no_body:
                return
            if truncate_to is not None and truncate_to < len(body):
                self.wfile.write(body[:truncate_to])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def _handle(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            path, query = split.path, split.query
            body = self._read_body()
            kind, repo, ref = classify(self.command, path)
            header_list = list(self.headers.items())
            info = proxy._register(
                {
                    "method": self.command,
                    "path": path,
                    "query": query,
                    "params": urllib.parse.parse_qs(query, keep_blank_values=True),
                    "headers": {k.lower(): v for k, v in header_list},
                    "kind": kind,
                    "repo": repo,
                    "reference": ref,
                    "body": body if proxy.record_bodies else b"",
                }
            )
            hook = proxy.fault
            fault = hook(info) if hook is not None else None
            delay = proxy.delay_s + (fault.delay_s if fault else 0.0)
            if delay > 0:
                time.sleep(delay)
            if fault is not None and fault.reset:
                self._reset()
                return
            if fault is not None and fault.status is not None:
                raw = fault.body.encode() if isinstance(fault.body, str) else (fault.body or b"")
                headers = list(fault.headers.items())
                if raw and not any(k.lower() == "content-type" for k, _ in headers):
                    headers.append(("Content-Type", "application/json"))
                self._respond(info, fault.status, headers, raw, fault.truncate_to)
                return
            try:
                if kind == "tags" and self.command == "GET":
                    status, headers, raw = proxy.paginate_tags(info, header_list)
                else:
                    status, headers, raw = proxy.forward(self.command, path, query, header_list, body)
            except httpx.HTTPError as exc:
                msg = json.dumps({"errors": [{"code": "UNKNOWN", "message": f"proxy upstream error: {exc}"}]})
                self._respond(info, 502, [("Content-Type", "application/json")], msg.encode(), None)
                return
            truncate = None
            if fault is not None:
                headers = _merge_headers(headers, fault.headers)
                truncate = fault.truncate_to
            self._respond(info, status, headers, raw, truncate)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


__all__ = [
    "KINDS",
    "Fault",
    "FaultHook",
    "RegistryProxy",
    "RequestInfo",
    "classify",
    "fault_sequence",
    "too_many_requests",
    "unavailable",
]
