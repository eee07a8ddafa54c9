"""Prometheus metrics of the service (SPEC section 7), in a ``CollectorRegistry`` of their own.

Cycle metrics are fed from each :class:`CycleResult` after the cycle; registry request metrics are read
from the registries' :class:`RequestCounter` objects when Prometheus scrapes, so they are always current.
No metric touches prometheus-client's global default registry, so several services (or tests) in one
process never share counts.

=================================================================  ========  ============================
metric                                                             type      labels
=================================================================  ========  ============================
``image_updater_cycles_total``                                     counter   kind, outcome
``image_updater_cycle_duration_seconds``                           histogram kind
``image_updater_applications``                                     gauge     status (last full cycle)
``image_updater_application_results_total``                        counter   status
``image_updater_images_checked_total``                             counter
``image_updater_images_updated_total``                             counter
``image_updater_errors_total``                                     counter   kind
``image_updater_registry_requests_total``                          counter   registry, kind, status
``image_updater_registry_retries_total``                           counter   registry, kind
``image_updater_registry_rate_limit_waits_total``                  counter   registry
``image_updater_registry_rate_limit_wait_seconds_total``           counter   registry
``image_updater_git_pushes_total``                                 counter
``image_updater_git_push_conflicts_total``                         counter
``image_updater_webhook_events_total``                             counter   source, outcome
=================================================================  ========  ============================

``kind`` of a cycle is ``scheduled`` or ``webhook``; its ``outcome`` is ``ok`` (no Application
failed), ``failed`` (some did) or ``error`` (the cycle itself raised). An error's ``kind`` is its class
in the product's error tree (``registry_auth``, ``edit``, ``git``, ...), ``source`` for an Application
manifest that could not be read, ``cycle`` for a cycle that raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from image_updater.adapters.registry.transport import RequestCounter
from image_updater.errors import ImageUpdaterError
from image_updater.service.cycle import CycleResult, Status

PREFIX = "image_updater"
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
CYCLE_OK, CYCLE_FAILED, CYCLE_ERROR = "ok", "failed", "error"

RegistryCounters = Callable[[], Mapping[str, RequestCounter]]
"""``() -> {registry host: its RequestCounter}``, read at every scrape."""


def error_kind(error: BaseException) -> str:
    """The metrics label of an error: its class in the error tree, ``RegistryAuthError`` -> ``registry_auth``."""
    if not isinstance(error, ImageUpdaterError) or type(error) is ImageUpdaterError:
        return "other"
    name = type(error).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class ServiceMetrics:
    """Every metric of the service, registered in ``self.registry`` (a fresh one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cycles = Counter(f"{PREFIX}_cycles", "Update cycles run", ["kind", "outcome"], registry=r)
        self.cycle_duration = Histogram(
            f"{PREFIX}_cycle_duration_seconds",
            "Duration of update cycles, discovery included",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.applications = Gauge(
            f"{PREFIX}_applications", "Applications by status in the last full cycle", ["status"], registry=r
        )
        self.application_results = Counter(
            f"{PREFIX}_application_results", "Application results of every cycle, by status", ["status"], registry=r
        )
        self.images_checked = Counter(
            f"{PREFIX}_images_checked", "Images whose tags were listed and a selection made", registry=r
        )
        self.images_updated = Counter(f"{PREFIX}_images_updated", "Images written with a new tag", registry=r)
        self.errors = Counter(f"{PREFIX}_errors", "Errors by kind", ["kind"], registry=r)
        self.git_pushes = Counter(f"{PREFIX}_git_pushes", "Commits pushed to config repositories", registry=r)
        self.git_push_conflicts = Counter(
            f"{PREFIX}_git_push_conflicts",
            "Pushes rejected because the branch moved; each was re-applied on the new tip",
            registry=r,
        )
        self.webhook_events = Counter(
            f"{PREFIX}_webhook_events", "Webhook requests by source and outcome", ["source", "outcome"], registry=r
        )
        for status in Status:
            self.applications.labels(status=status.value).set(0)
        self._registries = _RegistryCollector()
        r.register(self._registries)

    def watch_registries(self, counters: RegistryCounters) -> None:
        """Read registry request counts from ``counters`` at each scrape."""
        self._registries.source = counters

    def observe_cycle(self, kind: str, result: CycleResult, duration_s: float, *, full: bool) -> None:
        """Count a finished cycle; ``full`` (every Application was processed) also sets the gauges."""
        self.cycles.labels(kind=kind, outcome=CYCLE_FAILED if result.failed else CYCLE_OK).inc()
        self.cycle_duration.labels(kind=kind).observe(duration_s)
        by_status = {status: 0 for status in Status}
        for outcome in result.apps:
            by_status[outcome.status] += 1
            self.application_results.labels(status=outcome.status.value).inc()
            for image in outcome.images:
                if image.status is not Status.FAILED:
                    self.images_checked.inc()
                if image.status is Status.UPDATED:
                    self.images_updated.inc()
            for error in outcome.errors():
                self.errors.labels(kind=error_kind(error)).inc()
        if full:
            for status, count in by_status.items():
                self.applications.labels(status=status.value).set(count)
        self.git_pushes.inc(len(result.commits))  # a dry run makes no commit
        self.git_push_conflicts.inc(result.push_conflicts)

    def observe_cycle_error(self, kind: str, duration_s: float) -> None:
        """Count a cycle that raised instead of returning a result."""
        self.cycles.labels(kind=kind, outcome=CYCLE_ERROR).inc()
        self.cycle_duration.labels(kind=kind).observe(duration_s)
        self.errors.labels(kind="cycle").inc()

    def observe_error(self, kind: str, count: int = 1) -> None:
        """Count errors that happened outside a cycle result (``source`` problems, ...)."""
        if count:
            self.errors.labels(kind=kind).inc(count)

    def observe_webhook(self, source: str, outcome: str) -> None:
        """Count one webhook request."""
        self.webhook_events.labels(source=source, outcome=outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _RegistryCollector(Collector):
    """Registry request counts straight from the transport's :class:`RequestCounter` objects."""

    def __init__(self) -> None:
        self.source: RegistryCounters = dict

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            f"{PREFIX}_registry_requests",
            "Registry requests sent, by kind and status",
            labels=["registry", "kind", "status"],
        )
        retries = CounterMetricFamily(
            f"{PREFIX}_registry_retries", "Registry requests that were retries", labels=["registry", "kind"]
        )
        waits = CounterMetricFamily(
            f"{PREFIX}_registry_rate_limit_waits", "Requests that waited for the rate limit", labels=["registry"]
        )
        waited = CounterMetricFamily(
            f"{PREFIX}_registry_rate_limit_wait_seconds",
            "Time spent waiting for the rate limit",
            labels=["registry"],
        )
        for registry, counter in sorted(self.source().items()):
            for (kind, status), count in sorted(counter.statuses.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
                requests.add_metric([registry, kind, "error" if status is None else str(status)], count)
            for kind, count in sorted(counter.retries.items()):
                retries.add_metric([registry, kind], count)
            waits.add_metric([registry], counter.rate_limit_waits)
            waited.add_metric([registry], counter.rate_limit_wait_s)
        yield from (requests, retries, waits, waited)
