"""The long-running service: a cycle every ``interval``, and at once for the Applications a webhook names.

:class:`Runner` holds the loop. apscheduler's ``AsyncIOScheduler`` starts a full cycle every
``interval`` (the first at start-up, ``max_instances=1``); webhook pushes are collected for a short
window (``coalesce_s``) and then run one cycle for only the Applications whose images match a pushed
registry and repository. One lock serialises every cycle, so cycles never overlap: pushes that arrive
during a cycle wait for it and then run one follow-up. A full cycle covers the pushes that were
waiting when it began.

:meth:`Runner.stop` (on SIGTERM or SIGINT) starts no new cycle and lets the current one finish its
write-back for up to ``grace_s``; after that the cycle is abandoned (cancelled). A Git operation that
already runs in a worker thread still completes before the process exits, so a push is never cut
in half; a clone left half-done is repaired on the next start.

Readiness: ``/readyz`` answers 200 once the first full cycle has finished (whatever its Applications'
results) and until shutdown begins. Liveness: ``/healthz`` answers 200 unless one cycle has been
running for longer than ``stall_after_s``.

Dependencies are injected: ``discover()`` returns the Applications (a sequence, or an awaitable of
one), ``cycle(apps)`` is a coroutine returning a :class:`CycleResult`, ``clock`` and ``sleep`` drive
durations and the coalescing window.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from image_updater.adapters.files import discover_files
from image_updater.adapters.git.workspace import default_cache_dir
from image_updater.adapters.registry.pool import RegistryPool
from image_updater.adapters.registry.transport import RequestCounter
from image_updater.appfilter import build_filter
from image_updater.config import RegistrySettings, Settings
from image_updater.errors import ImageUpdaterError
from image_updater.model.spec import AppSpec, ImageSpec
from image_updater.selection.base import TagInfo
from image_updater.service.cycle import CycleDeps, CycleResult, Status, run_cycle
from image_updater.service.http import HttpServers, WebhookEndpoint, WebhookSecrets, build_app
from image_updater.service.metrics import ServiceMetrics
from image_updater.service.webhooks import DEFAULT_MAX_BODY_BYTES, PushEvent, host_aliases, select_apps

Discover = Callable[[], Sequence[AppSpec] | Awaitable[Sequence[AppSpec]]]
CycleFn = Callable[[Sequence[AppSpec]], Awaitable[CycleResult]]
DEFAULT_COALESCE_S = 0.3
DEFAULT_GRACE_S = 20.0


class CycleKind(StrEnum):
    """Why a cycle ran."""

    SCHEDULED = "scheduled"
    WEBHOOK = "webhook"


class Runner:
    """Runs cycles on a schedule and on webhook pushes, one at a time; see the module docstring."""

    def __init__(
        self,
        *,
        discover: Discover,
        cycle: CycleFn,
        interval: float,
        coalesce_s: float = DEFAULT_COALESCE_S,
        aliases: Mapping[str, str] | None = None,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        stall_after_s: float | None = None,
        log: Any = None,
    ) -> None:
        self._discover = discover
        self._cycle = cycle
        self.interval = interval
        self.coalesce_s = coalesce_s
        self.aliases = dict(aliases or {})
        self.metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self.stall_after_s = stall_after_s if stall_after_s is not None else max(600.0, 5 * interval)
        self.log = log or structlog.get_logger()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pending: list[PushEvent] = []
        self._ready = False
        self._stopping = False
        self._running_since: float | None = None
        self._cycle_task: asyncio.Task[Any] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self.last_result: CycleResult | None = None

    # -- state seen by the HTTP endpoints ------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Webhook pushes waiting for their cycle."""
        return len(self._pending)

    @property
    def busy(self) -> bool:
        """Whether a cycle is running now."""
        return self._running_since is not None

    def readiness(self) -> tuple[bool, str]:
        """Ready once the first full cycle has finished, until shutdown begins."""
        if self._stopping:
            return False, "shutting down"
        if not self._ready:
            return False, "the first cycle has not finished"
        return True, "ready"

    def health(self) -> tuple[bool, str]:
        """Alive unless one cycle has been running for longer than ``stall_after_s``."""
        if self._running_since is not None:
            running = self._clock() - self._running_since
            if running > self.stall_after_s:
                return False, f"a cycle has been running for {running:.0f}s"
        return True, "ok"

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, *, scheduler: AsyncIOScheduler | None = None) -> None:
        """Start the schedule (first cycle now) and the webhook worker, in the running loop."""
        self._scheduler = scheduler or AsyncIOScheduler(timezone=dt.UTC)
        self._scheduler.add_job(
            self.run_full_cycle,
            "interval",
            seconds=self.interval,
            next_run_time=dt.datetime.now(dt.UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self.interval)),
            id="full-cycle",
        )
        self._scheduler.start()
        self._worker = asyncio.get_running_loop().create_task(self._webhook_worker(), name="webhook-worker")
        self.log.info("service started", interval_s=self.interval, coalesce_s=self.coalesce_s)

    async def stop(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        """Start no new cycle; let the current one finish for up to ``grace_s``, then abandon it."""
        self._stopping = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self.busy:
            self.log.info("stopping: waiting for the current cycle", grace_s=grace_s)
        try:
            async with asyncio.timeout(grace_s):
                async with self._lock:
                    pass
        except TimeoutError:
            task = self._cycle_task
            self.log.warning("stopping: abandoning the current cycle", grace_s=grace_s)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({task})
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self.log.info("service stopped", pending_pushes=len(self._pending))

    # -- cycles --------------------------------------------------------------------------------------

    async def run_full_cycle(self) -> CycleResult | None:
        """One cycle over every Application (the scheduled job); waits for a running cycle first."""
        if self._stopping:
            return None
        async with self._lock:
            if self._stopping:
                return None
            self._pending.clear()  # this cycle reads every image's tags afresh
            return await self._run(CycleKind.SCHEDULED, None)

    def notify(self, events: Sequence[PushEvent]) -> int:
        """Queue webhook pushes; they run after the coalescing window. Returns how many were queued."""
        if not events or self._stopping:
            return 0
        self._pending.extend(events)
        self._wake.set()
        return len(events)

    async def run_pending(self) -> CycleResult | None:
        """Run one cycle for the queued pushes now (after a running cycle); ``None`` if there is nothing."""
        async with self._lock:
            self._wake.clear()
            events, self._pending = self._pending, []
            if not events or self._stopping:
                return None
            return await self._run(CycleKind.WEBHOOK, events)

    async def _webhook_worker(self) -> None:
        while True:
            await self._wake.wait()
            await self._sleep(self.coalesce_s)  # let the rest of a burst arrive
            await self.run_pending()

    async def _run(self, kind: CycleKind, events: Sequence[PushEvent] | None) -> CycleResult | None:
        started = self._clock()
        self._running_since = started
        self._cycle_task = asyncio.current_task()
        log = self.log.bind(cycle=kind.value)
        try:
            apps = await self._apps()
            if events is not None:
                pushed = sorted({str(e) for e in events})
                apps = select_apps(apps, events, self.aliases)
                if not apps:
                    log.info("no application uses the pushed images", pushes=pushed)
                    return None
                log.info("webhook cycle", pushes=pushed, applications=[a.name for a in apps])
            result = await self._cycle(apps)
        except asyncio.CancelledError:
            log.warning("cycle abandoned")
            raise
        except ImageUpdaterError as e:
            log.error("cycle failed", error=str(e))
            self._count_error(kind, started)
            return None
        except Exception as e:  # a bug in one cycle must not end the service
            log.exception("cycle failed unexpectedly", error=repr(e))
            self._count_error(kind, started)
            return None
        finally:
            self._running_since = None
            self._cycle_task = None
        duration = self._clock() - started
        if self.metrics is not None:
            self.metrics.observe_cycle(kind.value, result, duration, full=events is None)
        if events is None:
            self._ready = True
        self.last_result = result
        log.info(
            "cycle finished",
            applications=len(result.apps),
            failed=sum(1 for a in result.apps if a.status is Status.FAILED),
            commits=len(result.commits),
            duration_s=round(duration, 3),
        )
        return result

    async def _apps(self) -> Sequence[AppSpec]:
        found = self._discover()
        if inspect.isawaitable(found):
            found = await found
        return list(found)

    def _count_error(self, kind: CycleKind, started: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_cycle_error(kind.value, self._clock() - started)


class RegistryTags:
    """The cycle's tag source for the service: one :class:`RegistryPool` per registry host.

    The pools live as long as the service (clients, tokens, the scheme memory and the metadata cache
    are reused between cycles); one pool per host keeps one :class:`RequestCounter` per registry for the
    metrics. ``pool_options`` go to every :class:`RegistryPool` (a credentials provider, ...).
    """

    def __init__(self, registries: Sequence[RegistrySettings], **pool_options: Any) -> None:
        self.registries = tuple(registries)
        self._options = pool_options
        self._pools: dict[str, RegistryPool] = {}

    def _pool(self, image: ImageSpec) -> RegistryPool:
        host = image.name.registry
        if host not in self._pools:
            self._pools[host] = RegistryPool(self.registries, **self._options)
        return self._pools[host]

    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        """Every tag of the image's repository."""
        return await self._pool(image).list_tags(image)

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        """``tags`` with digests and creation dates, from the image's registry."""
        return await self._pool(image).with_metadata(image, tags)

    def counters(self) -> dict[str, RequestCounter]:
        """Requests sent so far, by registry host."""
        return {host: pool.counter for host, pool in self._pools.items()}

    async def aclose(self) -> None:
        """Close every pool."""
        for pool in self._pools.values():
            await pool.aclose()


@dataclass
class Service:
    """The assembled service: runner, metrics, HTTP servers and the registries it talks to."""

    runner: Runner
    metrics: ServiceMetrics
    servers: HttpServers
    tags: RegistryTags

    async def run(self, stop: asyncio.Event | None = None, *, grace_s: float = DEFAULT_GRACE_S) -> int:
        """Serve until ``stop`` is set (or SIGTERM/SIGINT in the main thread); returns the exit code 0."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        try:
            await self.servers.start()
            self.runner.start()
            await stop.wait()
            self.runner.log.info("stop requested")
            await self.runner.stop(grace_s)
        finally:
            await self.servers.stop()
            await self.tags.aclose()
            for sig in handled:
                loop.remove_signal_handler(sig)
        return 0


def build_service(
    settings: Settings,
    *,
    listen: str = "0.0.0.0",
    dry_run: bool = False,
    coalesce_s: float = DEFAULT_COALESCE_S,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log: Any = None,
) -> Service:
    """Wire the service from settings: files source, registries, Git, metrics, webhook and probes.

    Raises :class:`ConfigError` for a wrong webhook secret setting or a port that cannot be bound.
    """
    log = log or structlog.get_logger()
    secrets = WebhookSecrets(settings.webhook.secrets)
    if settings.webhook.port and secrets.unprotected:
        log.warning("webhook sources accepted without a secret", sources=secrets.unprotected)
    metrics = ServiceMetrics()
    tags = RegistryTags(settings.registries)
    metrics.watch_registries(tags.counters)
    app_filter = build_filter(settings.applications.match_names, settings.applications.match_labels)
    deps = CycleDeps(
        tags=tags,
        git=settings.git,
        cache_dir=Path(settings.git.cache_dir) if settings.git.cache_dir else default_cache_dir(),
        max_concurrency=settings.max_concurrency,
        dry_run=dry_run,
        log=log,
    )

    async def discover() -> Sequence[AppSpec]:
        found = await asyncio.to_thread(discover_files, settings.applications.path, app_filter)
        for problem in found.problems:
            log.error("application not readable", where=problem.where, error=str(problem.error))
        metrics.observe_error("source", len(found.problems))
        return found.apps

    async def cycle(apps: Sequence[AppSpec]) -> CycleResult:
        result = await run_cycle(apps, deps)
        if dry_run:
            for diff in result.diffs:
                print(diff, end="", flush=True)
        return result

    runner = Runner(
        discover=discover,
        cycle=cycle,
        interval=settings.interval,
        coalesce_s=coalesce_s,
        aliases=host_aliases(settings.registries),
        metrics=metrics,
        log=log,
    )
    webhook = WebhookEndpoint(secrets, runner.notify, metrics=metrics, max_body_bytes=max_body_bytes, log=log)
    health_port, webhook_port = settings.health_port, settings.webhook.port
    if health_port and health_port == webhook_port:
        apps = {health_port: build_app(status=runner, metrics=metrics, webhook=webhook)}
    else:
        apps = {health_port: build_app(status=runner, metrics=metrics), webhook_port: build_app(webhook=webhook)}
    servers = HttpServers(apps, host=listen)
    servers.bind()
    return Service(runner=runner, metrics=metrics, servers=servers, tags=tags)
