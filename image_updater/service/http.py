"""The HTTP side of the service: an ASGI app (starlette) served by uvicorn in the service's own loop.

Endpoints: ``GET /healthz`` (liveness), ``GET /readyz`` (readiness: after the first full cycle),
``GET /metrics`` (Prometheus text) on the health port, and ``POST /webhook`` on the webhook port (one
app serves all four when both ports are the same). The webhook endpoint reads at most
``max_body_bytes`` (413 past it), hands the bytes to the pure parsers of :mod:`webhooks`, queues the
pushes with the runner and answers at once: 202 when pushes were queued, 200 when the request carried
none (a blob push, a ping), 401/400/413 when refused (nothing is queued), 503 during shutdown.

Uvicorn's own signal handling is switched off (the service owns SIGTERM and SIGINT) and so is its
access log, which would print ``?secret=`` query strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from image_updater.config import resolve_secret
from image_updater.errors import ConfigError, ImageUpdaterError, WebhookError
from image_updater.logsetup import register_secret
from image_updater.service.metrics import ServiceMetrics
from image_updater.service.webhooks import (
    DEFAULT_MAX_BODY_BYTES,
    SOURCES,
    PushEvent,
    SecretLookup,
    WebhookRequest,
    handle_webhook,
    requested_source,
)

OUTCOME_ACCEPTED, OUTCOME_IGNORED, OUTCOME_UNAUTHORIZED, OUTCOME_INVALID, OUTCOME_TOO_LARGE = (
    "accepted",
    "ignored",
    "unauthorized",
    "invalid",
    "too_large",
)
_OUTCOMES = {401: OUTCOME_UNAUTHORIZED, 413: OUTCOME_TOO_LARGE}


class StatusSource(Protocol):
    """What the probes ask (the :class:`~image_updater.service.runner.Runner`)."""

    def health(self) -> tuple[bool, str]:
        """Liveness and a reason."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """Readiness and a reason."""
        ...


class WebhookSecrets:
    """The ``webhook.secrets`` of the config: checked at start-up, read (``env:``/``file:``) at each use.

    Keys are webhook sources. Every secret's text is registered for log redaction. A configured secret
    that reads as empty is an error, never "no secret".
    """

    def __init__(self, specs: Mapping[str, str]) -> None:
        for source in specs:
            if source not in SOURCES:
                raise ConfigError(
                    f"unknown webhook source (known: {', '.join(SOURCES)})", key=f"webhook.secrets.{source}"
                )
        self._specs = dict(specs)
        for source in self._specs:
            self(source)

    def __call__(self, source: str) -> str | None:
        """The secret of ``source`` now, or ``None`` if it has none."""
        spec = self._specs.get(source)
        if spec is None:
            return None
        value = resolve_secret(spec, key=f"webhook.secrets.{source}")
        if not value:
            raise ConfigError("reads as empty", key=f"webhook.secrets.{source}")
        register_secret(value)
        return value

    @property
    def unprotected(self) -> list[str]:
        """Sources accepted without any secret."""
        return [s for s in SOURCES if s not in self._specs]


class WebhookEndpoint:
    """``POST /webhook``: bound body, parse and authenticate, queue the pushes, answer at once."""

    def __init__(
        self,
        secrets: SecretLookup,
        notify: Callable[[Sequence[PushEvent]], int],
        *,
        metrics: ServiceMetrics | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        log: Any = None,
    ) -> None:
        self.secrets = secrets
        self.notify = notify
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.log = log or structlog.get_logger()

    async def handle(self, request: Request) -> Response:
        """Handle one webhook request (a starlette endpoint)."""
        client = request.client.host if request.client else None
        try:
            body = await _read_bounded(request, self.max_body_bytes)
            parsed = WebhookRequest.of(body, dict(request.headers), dict(request.query_params))
            result = handle_webhook(parsed, self.secrets, max_body_bytes=self.max_body_bytes)
        except WebhookError as e:
            source = e.source if e.source in SOURCES else "unknown"
            self._count(source, _OUTCOMES.get(e.status, OUTCOME_INVALID))
            self.log.warning("webhook refused", source=source, status=e.status, reason=e.message, client=client)
            return JSONResponse({"error": e.message}, status_code=e.status)
        except ImageUpdaterError as e:  # a configured secret could not be read
            self.log.error("webhook secret unavailable", error=str(e))
            return JSONResponse({"error": "webhook secret unavailable"}, status_code=500)
        if not result.events:
            self._count(result.source, OUTCOME_IGNORED)
            self.log.debug("webhook without a tag push", source=result.source, client=client)
            return JSONResponse({"source": result.source, "queued": 0})
        queued = self.notify(result.events)
        pushes = [str(e) for e in result.events]
        if not queued:
            self.log.warning("webhook during shutdown", source=result.source, pushes=pushes)
            return JSONResponse({"error": "shutting down"}, status_code=503)
        self._count(result.source, OUTCOME_ACCEPTED)
        self.log.info("webhook received", source=result.source, pushes=pushes, client=client)
        return JSONResponse({"source": result.source, "queued": queued, "pushes": pushes}, status_code=202)

    def _count(self, source: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.observe_webhook(source, outcome)


async def _read_bounded(request: Request, limit: int) -> bytes:
    """The request body, or a 413 :class:`WebhookError` as soon as it passes ``limit`` bytes."""
    source = requested_source(WebhookRequest.of(b"", dict(request.headers), dict(request.query_params)))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise WebhookError(f"body larger than {limit} bytes", status=413, source=source)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookError(f"body larger than {limit} bytes", status=413, source=source)
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    *,
    status: StatusSource | None = None,
    metrics: ServiceMetrics | None = None,
    webhook: WebhookEndpoint | None = None,
) -> Starlette:
    """An ASGI app with the probes (``status``), ``/metrics`` (``metrics``) and ``/webhook`` (``webhook``)."""
    routes: list[Route] = []
    if status is not None:

        async def healthz(_request: Request) -> Response:
            ok, reason = status.health()
            return PlainTextResponse(reason + "\n", status_code=200 if ok else 503)

        async def readyz(_request: Request) -> Response:
            ok, reason = status.readiness()
            return PlainTextResponse(reason + "\n", status_code=200 if ok else 503)

        routes += [Route("/healthz", healthz), Route("/readyz", readyz)]
    if metrics is not None:

        async def metrics_endpoint(_request: Request) -> Response:
            body, content_type = metrics.render()
            return Response(body, media_type=content_type)

        routes.append(Route("/metrics", metrics_endpoint))
    if webhook is not None:
        routes.append(Route("/webhook", webhook.handle, methods=["POST"]))
    return Starlette(routes=routes)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the service decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServers:
    """One uvicorn server per port, in the running loop, on sockets bound up front (port 0 disables)."""

    def __init__(self, apps: Mapping[int, ASGIApp], *, host: str = "0.0.0.0") -> None:
        self.host = host
        self._apps = {port: app for port, app in apps.items() if port}
        self._sockets: dict[int, socket.socket] = {}
        self._servers: list[_Server] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ports(self) -> list[int]:
        """The ports served."""
        return sorted(self._apps)

    def bind(self) -> None:
        """Bind every port now, so a taken port is a configuration error at start-up."""
        for port in self._apps:
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
            except OSError as e:
                sock.close()
                self.close()
                raise ConfigError(
                    f"cannot listen on {self.host}:{port} (health_port / webhook.port): {e.strerror}"
                ) from e
            sock.listen(128)
            sock.setblocking(False)
            self._sockets[port] = sock

    async def start(self, timeout_s: float = 10.0) -> None:
        """Serve every app; returns once each server accepts connections."""
        if not self._sockets:
            self.bind()
        for port, app in self._apps.items():
            config = uvicorn.Config(
                app, lifespan="off", log_config=None, access_log=False, log_level="warning", server_header=False
            )
            server = _Server(config)
            self._servers.append(server)
            self._tasks.append(asyncio.create_task(server.serve(sockets=[self._sockets[port]]), name=f"http-{port}"))
        async with asyncio.timeout(timeout_s):
            while not all(s.started for s in self._servers):
                for task in self._tasks:
                    if task.done():
                        task.result()  # raises what stopped it
                        raise RuntimeError("an HTTP server stopped while starting")
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving (open requests get a moment to finish)."""
        for server in self._servers:
            server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.close()

    def close(self) -> None:
        """Close the bound sockets."""
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
