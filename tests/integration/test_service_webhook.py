"""The service end to end: the real distribution registry sends its notifications to our ``/webhook``, the
service writes the new tag to the real Git server; forged webhooks get 401 and trigger nothing; ``/metrics``
exposes the right values after a cycle; a burst of pushes runs one update; SIGTERM and SIGINT exit 0."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from image_updater.cli import main
from image_updater.config import Settings, WebhookSettings, load_settings
from image_updater.logsetup import configure_logging
from image_updater.service.runner import DEFAULT_COALESCE_S, Service, build_service
from tests.conftest import RegistryFactory
from tests.harness.gitserver import GitHttpServer
from tests.harness.registry import RegistryServer, push_image
from tests.harness.util import free_port, wait_until
from tests.integration.scenario import BASE_TIME, Scenario, application, kustomization, push_tags

pytestmark = pytest.mark.integration

DISTRIBUTION_SECRET = "dist-hook-7Qx9"
GHCR_SECRET = "ghcr-hook-Lm3v"
LATENCY_BUDGET_S = 2.0


class RunningService:
    """The real service (``build_service`` + ``Service.run``) on its own event loop in a thread."""

    def __init__(self, settings: Settings, *, coalesce_s: float) -> None:
        self.settings = settings
        self.coalesce_s = coalesce_s
        self.service: Service | None = None
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._built = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="service", daemon=True)

    def _main(self) -> None:
        async def main() -> int:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self.service = build_service(self.settings, listen="127.0.0.1", coalesce_s=self.coalesce_s)
            finally:
                self._built.set()
            return await self.service.run(self._stop, grace_s=5)

        try:
            self.exit_code = asyncio.run(main())
        except BaseException as e:  # reported by the test
            self.error = e
            self._built.set()

    def __enter__(self) -> RunningService:
        self._thread.start()
        assert self._built.wait(10) and self.error is None, self.error
        assert wait_until(lambda: self.get("/readyz").status_code == 200, timeout=15), "never ready"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive() and self.error is None and self.exit_code == 0

    @property
    def runner(self) -> Any:
        assert self.service is not None
        return self.service.runner

    def get(self, path: str) -> httpx.Response:
        try:
            return httpx.get(f"http://127.0.0.1:{self.settings.health_port}{path}", timeout=5)
        except httpx.TransportError:
            return httpx.Response(599)

    def post(self, body: bytes, *, headers: dict[str, str] | None = None, **query: str) -> httpx.Response:
        url = f"http://127.0.0.1:{self.settings.webhook.port}/webhook"
        return httpx.post(url, content=body, headers=headers or {}, params=query, timeout=5)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of ``/metrics``, read over HTTP once."""
        families = text_string_to_metric_families(self.get("/metrics").text)
        return {(s.name, frozenset(s.labels.items())): float(s.value) for f in families for s in f.samples}

    def metric(self, name: str, **labels: str) -> float:
        """One sample of ``/metrics`` (0 when absent)."""
        return self.metrics().get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line of the service, as JSON, for assertions (structlog is reset afterwards)."""
    stream = io.StringIO()
    stream.isatty = lambda: False  # type: ignore[method-assign]
    configure_logging("json", "debug", stream=stream)
    yield stream
    structlog.reset_defaults()


def service_settings(scenario: Scenario, monkeypatch: pytest.MonkeyPatch, **secrets: str) -> Settings:
    monkeypatch.setenv("IU_TEST_GIT_PASSWORD", scenario.git.password)
    settings = load_settings(scenario.write_config())
    return settings.replace(
        interval=3600.0,  # only the first cycle is scheduled within a test; the rest is webhooks
        health_port=free_port(),
        webhook=WebhookSettings(port=free_port(), secrets=secrets),
    )


def notification_url(port: int, secret: str) -> str:
    return f"http://127.0.0.1:{port}/webhook?type=distribution&secret={secret}"


def kustomized_app(git_server: GitHttpServer, scenario: Scenario, name: str, image: str, tag: str) -> None:
    url = git_server.create_repo(name, {"app/kustomization.yaml": kustomization(image, tag)})
    scenario.add_app(f"{name}.yaml", application(name, url, "app", image))


def new_tag_in_git(git_server: GitHttpServer, repo: str) -> str:
    text = git_server.read_file(repo, "app/kustomization.yaml") or ""
    return text.split("newTag:", 1)[1].split()[0]


def test_a_pushed_tag_is_committed_within_two_seconds(
    registry_factory: RegistryFactory,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    scenario = Scenario(tmp_path, git_server)
    settings = service_settings(scenario, monkeypatch, distribution=DISTRIBUTION_SECRET)
    registry = registry_factory(notifications=[notification_url(settings.webhook.port, DISTRIBUTION_SECRET)])
    image = f"{registry.host}/svc/web"
    kustomized_app(git_server, scenario, "svc-latency", image, "1.0.0")

    with RunningService(settings, coalesce_s=DEFAULT_COALESCE_S) as running:  # the production window
        push_tags(registry, "svc/web", "1.0.0")  # the tag the config repo already runs: no commit
        assert wait_until(
            lambda: running.metric("image_updater_cycles_total", kind="webhook", outcome="ok") == 1, timeout=10
        )
        assert git_server.commit_count("svc-latency") == 1

        latencies = []
        for round_number, tag in enumerate(("2.0.0", "2.1.0", "2.2.0"), start=1):
            head = git_server.rev_parse("svc-latency")
            started = time.monotonic()
            push_image(registry, "svc/web", tag, created=BASE_TIME + dt.timedelta(days=round_number))
            assert wait_until(lambda h=head: git_server.rev_parse("svc-latency") != h, timeout=10, interval=0.005)
            latencies.append(time.monotonic() - started)
            assert new_tag_in_git(git_server, "svc-latency") == tag

        print(
            f"\nwebhook-to-commit latency: median {statistics.median(latencies):.3f}s, "
            f"max {max(latencies):.3f}s over {len(latencies)} pushes "
            f"({', '.join(f'{x:.3f}' for x in latencies)})"
        )
        assert max(latencies) < LATENCY_BUDGET_S
        assert git_server.commit_count("svc-latency") == 4
        assert f"{image}: 2.1.0 -> 2.2.0" in git_server.commit_message("svc-latency")
        # every push reached us through the registry's notifications, never through the schedule
        assert running.metric("image_updater_cycles_total", kind="webhook", outcome="ok") == 4
        assert running.metric("image_updater_cycles_total", kind="scheduled", outcome="failed") == 1
        assert running.metric("image_updater_webhook_events_total", source="distribution", outcome="accepted") == 4
        assert running.metric("image_updater_webhook_events_total", source="distribution", outcome="ignored") >= 4

    assert DISTRIBUTION_SECRET not in logs.getvalue()


def test_a_wrong_secret_or_signature_gets_401_and_triggers_nothing(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    scenario = Scenario(tmp_path, git_server)
    settings = service_settings(scenario, monkeypatch, distribution=DISTRIBUTION_SECRET, **{"ghcr.io": GHCR_SECRET})
    image = f"{registry_anon.host}/svc/forged"
    push_tags(registry_anon, "svc/forged", "1.0.0")
    kustomized_app(git_server, scenario, "svc-forged", image, "1.0.0")
    envelope = json.dumps(
        {
            "events": [
                {
                    "action": "push",
                    "target": {"repository": "svc/forged", "tag": "2.0.0", "digest": "sha256:" + "a" * 64},
                    "request": {"host": registry_anon.host, "method": "PUT"},
                }
            ]
        }
    ).encode()

    with RunningService(settings, coalesce_s=0.1) as running:
        push_image(registry_anon, "svc/forged", "2.0.0", created=BASE_TIME + dt.timedelta(days=1))
        answers = [
            running.post(envelope, type="distribution", secret="not-it"),
            running.post(envelope, type="distribution"),
            running.post(envelope, headers={"Authorization": "Bearer not-it"}, type="distribution"),
            running.post(
                b'{"action": "published", "package": {}}',
                headers={"X-GitHub-Event": "package", "X-Hub-Signature-256": "sha256=" + "0" * 64},
            ),
        ]
        assert [a.status_code for a in answers] == [401, 401, 401, 401]
        assert running.runner.pending == 0
        time.sleep(0.1 + 0.3)  # the coalescing window and then some: a triggered cycle would have run
        assert git_server.commit_count("svc-forged") == 1
        assert running.metric("image_updater_cycles_total", kind="webhook", outcome="ok") == 0
        assert running.metric("image_updater_webhook_events_total", source="distribution", outcome="unauthorized") == 3
        assert running.metric("image_updater_webhook_events_total", source="ghcr.io", outcome="unauthorized") == 1

        # The same request with the secret is taken: the setup would have shown a trigger.
        assert running.post(envelope, type="distribution", secret=DISTRIBUTION_SECRET).status_code == 202
        assert wait_until(lambda: git_server.commit_count("svc-forged") == 2, timeout=10)

    assert DISTRIBUTION_SECRET not in logs.getvalue() and GHCR_SECRET not in logs.getvalue()


def test_metrics_after_a_cycle(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    scenario = Scenario(tmp_path, git_server)
    settings = service_settings(scenario, monkeypatch)
    host = registry_anon.host
    push_tags(registry_anon, "svc/metrics", "1.0.0", "1.1.0")
    kustomized_app(git_server, scenario, "svc-metrics", f"{host}/svc/metrics", "1.0.0")
    kustomized_app(git_server, scenario, "svc-metrics-current", f"{host}/svc/metrics:~1.1", "1.1.0")
    scenario.add_app("broken.yaml", application("svc-broken", "http://127.0.0.1:9/x.git", "app", f"{host}/svc/none"))

    with RunningService(settings, coalesce_s=0.1) as running:
        snapshot = running.metrics()

        def m(name: str, **labels: str) -> float:
            return snapshot.get((name, frozenset(labels.items())), 0.0)

        assert m("image_updater_cycles_total", kind="scheduled", outcome="failed") == 1
        assert m("image_updater_cycle_duration_seconds_count", kind="scheduled") == 1
        assert m("image_updater_applications", status="updated") == 1
        assert m("image_updater_applications", status="unchanged") == 1
        assert m("image_updater_applications", status="failed") == 1
        assert m("image_updater_images_checked_total") == 2
        assert m("image_updater_images_updated_total") == 1
        assert m("image_updater_errors_total", kind="git") == 1
        assert m("image_updater_git_pushes_total") == 1
        assert m("image_updater_git_push_conflicts_total") == 0
        # one ping and one tag listing: the two Applications share the listing of their image
        assert m("image_updater_registry_requests_total", registry=host, kind="ping", status="200") == 1
        assert m("image_updater_registry_requests_total", registry=host, kind="tags", status="200") == 1
        assert m("image_updater_registry_rate_limit_waits_total", registry=host) == 0
        assert m("image_updater_webhook_events_total", source="docker.io", outcome="accepted") == 0
        assert running.get("/healthz").status_code == 200
        assert new_tag_in_git(git_server, "svc-metrics") == "1.1.0"

        docker_hub = {"push_data": {"tag": "9.9"}, "repository": {"repo_name": "library/nothing-uses-this"}}
        assert running.post(json.dumps(docker_hub).encode()).status_code == 202
        assert wait_until(lambda: running.runner.pending == 0 and not running.runner.busy, timeout=5)
        snapshot = running.metrics()
        assert m("image_updater_webhook_events_total", source="docker.io", outcome="accepted") == 1
        assert m("image_updater_cycles_total", kind="webhook", outcome="ok") == 0  # no Application uses it


def test_a_burst_of_pushes_for_one_image_runs_one_update(
    registry_factory: RegistryFactory,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    scenario = Scenario(tmp_path, git_server)
    settings = service_settings(scenario, monkeypatch, distribution=DISTRIBUTION_SECRET)
    registry = registry_factory(notifications=[notification_url(settings.webhook.port, DISTRIBUTION_SECRET)])
    image = f"{registry.host}/svc/burst"
    kustomized_app(git_server, scenario, "svc-burst", image, "1.0.0")
    kustomized_app(git_server, scenario, "svc-bystander", f"{registry.host}/svc/other", "1.0.0")

    with RunningService(settings, coalesce_s=0.5) as running:
        tags = {f"1.0.{n}": BASE_TIME + dt.timedelta(hours=n) for n in range(1, 7)}
        registry.pusher.push_tags("svc/burst", tags, workers=6)
        assert wait_until(lambda: git_server.commit_count("svc-burst") == 2, timeout=10)
        assert wait_until(lambda: running.runner.pending == 0 and not running.runner.busy, timeout=5)
        time.sleep(0.5 + 0.2)  # a second update would start within the coalescing window

        assert new_tag_in_git(git_server, "svc-burst") == "1.0.6"
        assert git_server.commit_count("svc-burst") == 2
        assert running.metric("image_updater_cycles_total", kind="webhook", outcome="ok") == 1
        assert running.metric("image_updater_webhook_events_total", source="distribution", outcome="accepted") >= 1
        assert running.runner.last_result is not None
        assert [a.app.name for a in running.runner.last_result.apps] == ["svc-burst"]  # not the bystander


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_service_process_exits_0_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    (tmp_path / "apps").mkdir()
    health, webhook = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"applications: {{path: {tmp_path / 'apps'}}}\ninterval: 1h\nhealth_port: {health}\n"
        f"webhook: {{port: {webhook}}}\nlog: {{format: json}}\n"
    )
    command = [
        sys.executable,
        "-m",
        "image_updater.cli",
        "run",
        "--config",
        str(config),
        "--listen-address",
        "127.0.0.1",
    ]
    command += ["--webhook-coalesce", "50ms"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None

        assert wait_until(ready, timeout=20) and proc.poll() is None
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert events[-2:] == ["stop requested", "service stopped"]


def test_a_bad_service_setting_exits_2_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], logs: io.StringIO
) -> None:
    (tmp_path / "apps").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"applications: {{path: {tmp_path / 'apps'}}}\nwebhook: {{secrets: {{jfrog: x}}}}\n")
    args = ["run", "--config", str(config), "--listen-address", "127.0.0.1", "--health-port", str(free_port())]

    assert main([*args, "--webhook-port", str(free_port()), "--webhook-coalesce", "soon"]) == 2
    assert "--webhook-coalesce" in capsys.readouterr().err
    assert main([*args, "--webhook-port", str(free_port())]) == 2
    assert "webhook.secrets.jfrog" in capsys.readouterr().err
