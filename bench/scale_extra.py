"""The scale benchmark's two scenarios beyond plain cycles: a rate-limited registry that answers 429, and
webhook-to-commit latency. Run by :mod:`bench.scale_bench` (``--only limit,webhook``)."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.procs import ServiceProcess, quiet
from bench.scale_gen import BASE_TIME
from tests.harness.proxy import Fault, RegistryProxy, RequestInfo, too_many_requests
from tests.harness.registry import RegistryServer, push_image
from tests.harness.util import free_port

if TYPE_CHECKING:
    from bench.scale_bench import Bench

RETRY_AFTER_S = 1
LIMIT = 20


def limit_section(bench: Bench) -> None:
    """``limit: 20`` in the config and a proxy answering every 10th request 429 with Retry-After 1."""
    assert bench.workload is not None
    records: list[tuple[float, RequestInfo]] = []
    lock = threading.Lock()

    def hook(info: RequestInfo) -> Fault | None:
        with lock:
            records.append((time.monotonic(), info))
            return too_many_requests(RETRY_AFTER_S) if len(records) % 10 == 0 else None

    with quiet(RegistryProxy(bench.registry, fault=hook)) as proxy:
        config = bench.config("limited", bench.workload.main_dir, proxy.url, limit=LIMIT)
        run, pushes = bench.once(config)
    expected = bench.workload.expected_updates(bench.workload.apps)
    refused = [(at, info) for at, info in records if info.status == 429]
    tolerance = 0.02  # a request already on its way when the 429 left the proxy
    early = sum(1 for at, _ in refused for t, _other in records if at + tolerance < t < at + RETRY_AFTER_S)
    same_url_early = sum(
        1
        for at, info in refused
        for t, other in records
        if (other.path, other.query) == (info.path, info.query) and at < t < at + RETRY_AFTER_S
    )
    times = sorted(t for t, _ in records)
    busiest = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    print(
        f"\n[limit] limit {LIMIT}/s, every 10th request answered 429 Retry-After {RETRY_AFTER_S}: "
        f"cycle {run.cycle_s:.2f} s (process {run.process_s:.2f} s), exit {run.exit_code}, "
        f"updates {run.updates}/{expected}, pushes {pushes}, requests {len(records)} (429: {len(refused)})"
    )
    print(
        f"  requests that reached the proxy while a Retry-After ran: {early} (any URL, {tolerance * 1000:.0f} ms "
        f"grace for requests already sent), {same_url_early} (the retried URL itself); "
        f"most requests in any 1 s: {busiest} (limit {LIMIT} + 1 burst)"
    )


def webhook_section(bench: Bench) -> None:
    """Median and 95th percentile, over ``--pushes`` pushes, from the registry's notification to the
    commit on the Git server; the service holds every Application of the workload besides."""
    assert bench.workload is not None
    webhook_port, health_port = free_port(), free_port()
    arrivals: list[tuple[float, bytes]] = []

    def seen(info: RequestInfo) -> Fault | None:
        if info.method == "POST":
            arrivals.append((time.monotonic(), info.body))
        return None

    folder = bench.work / "webhook-applications"
    shutil.copytree(bench.workload.main_dir, folder, dirs_exist_ok=True)
    with (
        RegistryProxy(f"http://127.0.0.1:{webhook_port}", fault=seen, record_bodies=True, paginate=False) as relay,
        RegistryServer(notifications=[f"{relay.url}/webhook?type=distribution"]) as hooked,
    ):
        quiet(relay)  # the registry resets its idle connections
        image = f"{hooked.host}/hook/web"
        push_image(hooked, "hook/web", "1.0.0", created=BASE_TIME)
        kustomization = f"images:\n  - name: {image}\n    newTag: 1.0.0\n"
        url = bench.git.create_repo("config-hook", {"apps/hook/kustomization.yaml": kustomization})
        (folder / "hook.yaml").write_text(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: hook\n  namespace: argocd\n"
            "  annotations:\n"
            f"    argocd-image-updater.argoproj.io/image-list: web={image}\n"
            "    argocd-image-updater.argoproj.io/write-back-method: git\n"
            "    argocd-image-updater.argoproj.io/write-back-target: kustomization\n"
            f"spec:\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: apps/hook\n"
        )
        config = bench.config("webhook", folder, bench.registry.url, health_port=health_port, webhook_port=webhook_port)
        ref = bench.git.bare_path("config-hook") / "refs" / "heads" / "main"
        bench.workload.reset(bench.git)
        with ServiceProcess(config, bench.git.password, health_port, ("--interval", "1h")) as service:
            service.wait_ready()
            time.sleep(1.0)
            from_notification: list[float] = []
            from_push: list[float] = []
            for number in range(1, bench.args.pushes + 1):
                tag = f"1.0.{number}"
                head = _head(bench, ref)
                push_image(hooked, "hook/web", tag, created=BASE_TIME + dt.timedelta(minutes=number))
                pushed = time.monotonic()
                deadline = pushed + 30
                while _head(bench, ref) == head:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"push {tag} was never committed")
                    time.sleep(0.002)
                committed = time.monotonic()
                notified = next((t for t, body in arrivals if tag in _tags(body)), None)
                from_push.append(committed - pushed)
                if notified is not None:
                    from_notification.append(committed - notified)
            logged = []
            while not service.events.empty():
                event = service.events.get()
                if event.get("event") == "cycle finished" and event.get("cycle") == "webhook":
                    logged.append(float(event["duration_s"]))
    print(
        f"\n[webhook] {len(from_push)} pushes, service holding {len(bench.workload.apps) + 1} Applications "
        f"(coalescing window 300 ms, the default):"
    )
    if logged:
        print(
            f"  the service's own log: {len(logged)} webhook cycles, median {statistics.median(logged) * 1000:.0f} ms "
            "(from the end of the coalescing window: discovery, selection, sync, commit, push)"
        )
    for label, values in (("notification -> commit", from_notification), ("push done -> commit", from_push)):
        if values:
            ranked = sorted(values)
            p95 = ranked[math.ceil(0.95 * len(ranked)) - 1]  # nearest rank
            print(
                f"  {label}: median {statistics.median(values) * 1000:.0f} ms, 95th percentile {p95 * 1000:.0f} ms, "
                f"max {ranked[-1] * 1000:.0f} ms (n={len(values)}; target median < 500 ms)"
            )


def _tags(body: bytes) -> set[str]:
    """The tags a distribution notification envelope reports pushed."""
    try:
        events = json.loads(body).get("events") or []
    except ValueError:
        return set()
    return {str(e.get("target", {}).get("tag")) for e in events if e.get("target", {}).get("tag")}


def _head(bench: Bench, ref: Path) -> str | None:
    try:
        return ref.read_text().strip()
    except OSError:
        return bench.git.rev_parse("config-hook")
