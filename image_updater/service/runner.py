"""The long-running service: a cycle every ``interval``, and at once for the Applications a webhook names.

:class:`Runner` holds the loop. apscheduler's ``AsyncIOScheduler`` starts a full cycle every
``interval`` (the first at start-up, ``max_instances=1``); webhook pushes are collected until none has
come for ``quiet_s`` (50 ms), for at most ``coalesce_s`` after the first, and then run one cycle for
only the Applications whose images match a pushed registry and repository. One lock serialises every
cycle, so cycles never overlap: pushes that arrive during a cycle wait for it and then run one
follow-up. A full cycle covers the pushes that were waiting when it began.

:meth:`Runner.stop` (on SIGTERM or SIGINT) starts no new cycle and lets the current one finish its
write-back for up to ``grace_s``; after that the cycle is abandoned (cancelled). A Git operation that
already runs in a worker thread still completes before the process exits, so a push is never cut
in half; a clone left half-done is repaired on the next start.

Readiness: ``/readyz`` answers 200 once the first full cycle has finished (whatever its Applications'
results) and until shutdown begins. Liveness: ``/healthz`` answers 200 unless one cycle has been
running for longer than ``stall_after_s``.

Leadership (several replicas, one Lease): with a ``leader`` check, cycles run only while it holds; a
replica that starts leading runs a full cycle at once, one that stops leading abandons the running
cycle (a Git command already running completes; no other write starts) and drops queued pushes. A
follower is not ready, so a Kubernetes Service routes webhooks to the leader alone.

Dependencies are injected: ``discover()`` returns the Applications (a sequence, or an awaitable of
one), ``cycle(apps)`` is a coroutine returning a :class:`CycleResult`, ``clock`` and ``sleep`` drive
durations and the coalescing window.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from image_updater.errors import ImageUpdaterError
from image_updater.model.spec import AppSpec
from image_updater.service.cycle import CycleResult, Status
from image_updater.service.metrics import ServiceMetrics
from image_updater.service.webhooks import PushEvent, select_apps
from image_updater.service.wiring import RegistryTags

__all__ = ["DEFAULT_COALESCE_S", "DEFAULT_GRACE_S", "DEFAULT_QUIET_S", "CycleKind", "RegistryTags", "Runner"]

Discover = Callable[[], Sequence[AppSpec] | Awaitable[Sequence[AppSpec]]]
CycleFn = Callable[[Sequence[AppSpec]], Awaitable[CycleResult]]
DEFAULT_COALESCE_S = 0.3
#: a burst of pushes is over when no push has come for this long (the notifications of one image push,
#: its platforms' manifests and the index, come milliseconds apart)
DEFAULT_QUIET_S = 0.05
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
        quiet_s: float = DEFAULT_QUIET_S,
        aliases: Mapping[str, str] | None = None,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        stall_after_s: float | None = None,
        leader: Callable[[], bool] | None = None,
        log: Any = None,
    ) -> None:
        self._discover = discover
        self._leader = leader
        self._cycle = cycle
        self.interval = interval
        self.coalesce_s = coalesce_s
        self.quiet_s = quiet_s
        #: pushes queued so far (how the webhook worker tells that a burst goes on)
        self._notified = 0
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
        self._run_task: asyncio.Task[Any] | None = None  # what runs the cycle (the job, the worker)
        self._cycle_task: asyncio.Task[Any] | None = None  # the cycle itself
        self._worker: asyncio.Task[None] | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._kick: asyncio.Task[Any] | None = None
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

    @property
    def leading(self) -> bool:
        """Whether this replica may run cycles (always, without leader election)."""
        return self._leader is None or self._leader()

    def readiness(self) -> tuple[bool, str]:
        """Ready once the first full cycle has finished, while leading, until shutdown begins."""
        if self._stopping:
            return False, "shutting down"
        if not self.leading:
            return False, "not the leader: another replica runs the cycles"
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
        now = dt.datetime.now(dt.UTC)
        self._scheduler.add_job(
            self.run_full_cycle,
            "interval",
            seconds=self.interval,
            # with leader election the first cycle runs when leadership begins (started_leading)
            next_run_time=now if self._leader is None else now + dt.timedelta(seconds=self.interval),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self.interval)),
            id="full-cycle",
        )
        self._scheduler.start()
        self._worker = asyncio.get_running_loop().create_task(self._webhook_worker(), name="webhook-worker")
        self.log.info("service started", interval_s=self.interval, coalesce_s=self.coalesce_s)

    def started_leading(self) -> None:
        """This replica leads now: run a full cycle at once (called by the leader elector)."""
        if self._stopping:
            return
        self.log.info("leading: running a full cycle")
        self._kick = asyncio.get_running_loop().create_task(self.run_full_cycle(), name="leader-cycle")

    def stopped_leading(self) -> None:
        """This replica no longer leads: abandon the running cycle and drop queued pushes at once."""
        dropped, self._pending = len(self._pending), []
        task = self._cycle_task
        if task is not None and not task.done():
            self.log.warning("lost leadership: abandoning the current cycle", dropped_pushes=dropped)
            task.cancel()
        elif dropped:
            self.log.warning("lost leadership: queued pushes dropped", dropped_pushes=dropped)

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
            task = self._run_task
            self.log.warning("stopping: abandoning the current cycle", grace_s=grace_s)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({task})
        for background in (self._worker, self._kick):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
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
        self._notified += len(events)
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
            await self._burst()
            await self.run_pending()

    async def _burst(self) -> None:
        """Wait for the rest of a burst: until no push has come for ``quiet_s``, at most ``coalesce_s``."""
        window = self.coalesce_s
        while window > 0:
            seen = self._notified
            pause = min(self.quiet_s, window) if self.quiet_s > 0 else window
            await self._sleep(pause)
            window -= pause
            if self._notified == seen:
                return

    async def _run(self, kind: CycleKind, events: Sequence[PushEvent] | None) -> CycleResult | None:
        log = self.log.bind(cycle=kind.value)
        if not self.leading:
            log.debug("not the leader: no cycle")
            return None
        started = self._clock()
        self._running_since = started
        self._run_task = asyncio.current_task()
        try:
            apps = await self._apps()
            if events is not None:
                pushed = sorted({str(e) for e in events})
                apps = select_apps(apps, events, self.aliases)
                if not apps:
                    log.info("no application uses the pushed images", pushes=pushed)
                    return None
                log.info("webhook cycle", pushes=pushed, applications=[a.name for a in apps])
            if not self.leading:  # lost while the Applications were being listed
                log.info("not the leader any more: cycle not started")
                return None
            # its own task, so that losing leadership can cancel the cycle alone
            self._cycle_task = asyncio.ensure_future(self._cycle(apps))
            result = await self._cycle_task
        except asyncio.CancelledError:
            log.warning("cycle abandoned")
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            self._count_error(kind, started)
            return None
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
            self._run_task = self._cycle_task = None
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
            cpu_s=round(result.cpu_s, 3),
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


def __getattr__(name: str) -> Any:
    """``Service`` and ``build_service`` live in :mod:`image_updater.service.assembly` (which imports this
    module); they are still importable from here."""
    if name in ("Service", "build_service"):
        from image_updater.service import assembly

        return getattr(assembly, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
