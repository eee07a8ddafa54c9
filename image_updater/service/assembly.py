"""The assembled service: :func:`build_service` wires the settings into a :class:`Service` (the
:class:`~image_updater.service.runner.Runner`, the HTTP servers, the registries, the cluster and the
leader elector), and :meth:`Service.run` serves until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from image_updater.adapters.k8s.lease import LeaderElector
from image_updater.config import Settings
from image_updater.model.spec import AppSpec
from image_updater.service.cycle import CycleResult, run_cycle
from image_updater.service.http import HttpServers, WebhookEndpoint, WebhookSecrets, build_app
from image_updater.service.metrics import ServiceMetrics
from image_updater.service.runner import DEFAULT_GRACE_S, Runner
from image_updater.service.webhooks import host_aliases
from image_updater.service.wiring import RegistryTags, Wiring, lease_settings, wire


@dataclass
class Service:
    """The assembled service: runner, metrics, HTTP servers, the registries and the cluster it talks to,
    and the leader elector when replicas elect one."""

    runner: Runner
    metrics: ServiceMetrics
    servers: HttpServers
    tags: RegistryTags
    wiring: Wiring | None = None
    elector: LeaderElector | None = None

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
            if self.elector is not None:
                self.elector.start()
            await stop.wait()
            self.runner.log.info("stop requested")
            await self.runner.stop(grace_s)
        finally:
            if self.elector is not None:
                await self.elector.stop()  # releases the Lease: a follower takes over at once
            await self.servers.stop()
            await self.tags.aclose()
            if self.wiring is not None:
                await self.wiring.aclose()
            for sig in handled:
                loop.remove_signal_handler(sig)
        return 0


def build_service(
    settings: Settings,
    *,
    listen: str | None = None,
    dry_run: bool = False,
    coalesce_s: float | None = None,
    max_body_bytes: int | None = None,
    log: Any = None,
) -> Service:
    """Wire the service from settings: source, registries, Git, Kubernetes, metrics, webhook and probes.

    ``listen``, ``coalesce_s`` and ``max_body_bytes`` override ``listen_address``, ``webhook.coalesce``
    and ``webhook.max_body_bytes``. With the ``kubernetes`` source and ``leader_election.enabled``,
    only the replica holding the Lease runs cycles. Raises :class:`ConfigError` for a wrong webhook
    secret setting, a Kubernetes configuration that cannot be loaded, or a port that cannot be bound.
    """
    log = log or structlog.get_logger()
    secrets = WebhookSecrets(settings.webhook.secrets)
    if settings.webhook.port and secrets.unprotected:
        log.warning("webhook sources accepted without a secret", sources=secrets.unprotected)
    electing = settings.applications.source == "kubernetes" and settings.leader_election.enabled
    lease = lease_settings(settings.leader_election) if electing else None
    wiring = wire(settings, instance=lease.identity if lease else None, log=log)
    elector: LeaderElector | None = None
    try:
        metrics = ServiceMetrics()
        tags = RegistryTags(settings.registries, credentials=wiring.registry_credentials)
        metrics.watch_registries(tags.counters)

        def leading() -> bool:
            return elector is None or elector.is_leader

        deps = wiring.cycle_deps(tags, dry_run=dry_run, log=log, may_write=leading)

        async def discover() -> Sequence[AppSpec]:
            found = await wiring.source.discover()
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
            coalesce_s=settings.webhook.coalesce if coalesce_s is None else coalesce_s,
            aliases=host_aliases(settings.registries),
            metrics=metrics,
            leader=leading if lease is not None else None,
            log=log,
        )
        if lease is not None and wiring.cluster is not None:
            elector = LeaderElector(
                wiring.cluster.client,
                lease,
                log=log,
                on_started_leading=runner.started_leading,
                on_stopped_leading=runner.stopped_leading,
            )
        body_limit = settings.webhook.max_body_bytes if max_body_bytes is None else max_body_bytes
        webhook = WebhookEndpoint(secrets, runner.notify, metrics=metrics, max_body_bytes=body_limit, log=log)
        health_port, webhook_port = settings.health_port, settings.webhook.port
        if health_port and health_port == webhook_port:
            apps = {health_port: build_app(status=runner, metrics=metrics, webhook=webhook)}
        else:
            apps = {health_port: build_app(status=runner, metrics=metrics), webhook_port: build_app(webhook=webhook)}
        servers = HttpServers(apps, host=settings.listen_address if listen is None else listen)
        servers.bind()
    except BaseException:
        _close_later(wiring)
        raise
    return Service(runner=runner, metrics=metrics, servers=servers, tags=tags, wiring=wiring, elector=elector)


_CLOSING: set[asyncio.Task[None]] = set()


def _close_later(wiring: Wiring) -> None:
    """Close the Kubernetes client of a service that could not be built (from sync code)."""
    if wiring.cluster is None:
        return
    try:
        task = asyncio.get_running_loop().create_task(wiring.aclose())
    except RuntimeError:  # no loop running: close it on a loop of its own
        asyncio.run(wiring.aclose())
        return
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)
