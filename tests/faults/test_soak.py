"""Soak: the real service (``image-updater run`` as a subprocess) through many cycles against a registry
whose tags change every cycle.

Each round pushes a new tag of one image and sends the registry's webhook; the service updates the
config repository (scheduled cycles every 2 s run in between, sharing the lock). The service process's
resident memory, open file descriptors and threads are read from ``/proc`` after every round: after a
warm-up they may not grow beyond the bounds below. At the end every intended update is on the remote
exactly once (one commit per round, each moving the tag by one step), and the Application whose image
never changes was never written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.kit import Config, bodies, fsck, scaled
from tests.harness.gitserver import GitHttpServer
from tests.harness.registry import RegistryServer
from tests.harness.util import free_port, wait_until
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration

ROUNDS, LONG_ROUNDS = 30, 200
WARM_UP = 5
#: growth allowed after the warm-up, whatever the number of rounds
RSS_BOUND_MB, FD_BOUND, THREAD_BOUND = 16, 6, 2


def _proc_stats(pid: int) -> tuple[float, int, int]:
    """Resident memory in MB, open file descriptors and threads of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    return rss_mb, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"])


def test_soak_many_cycles_without_growth_and_every_update_exactly_once(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path
) -> None:
    rounds = scaled(ROUNDS, LONG_ROUNDS)
    images = {app: f"{registry_anon.host}/soak/{app}" for app in ("web", "static")}
    for app in images:
        push_tags(registry_anon, f"soak/{app}", "1.0.0")
    static_text = kustomization(images["static"], "1.0.0")
    url = git_server.create_repo(
        "soak",
        {"web/kustomization.yaml": kustomization(images["web"], "1.0.0"), "static/kustomization.yaml": static_text},
    )
    config = Config(
        tmp_path, git_server, registries=[{"name": "r", "prefix": registry_anon.host, "api_url": registry_anon.url}]
    )
    for app, image in images.items():
        config.add_app(f"{app}.yaml", application(app, url, app, image))
    health, webhook = free_port(), free_port()
    config.extra = f"interval: 2s\nhealth_port: {health}\nwebhook:\n  port: {webhook}\n"
    command = [sys.executable, "-m", "image_updater.cli", "run", "--config", str(config.write())]
    command += ["--listen-address", "127.0.0.1", "--webhook-coalesce", "50ms"]
    log = (tmp_path / "service.log").open("w")
    proc = subprocess.Popen(command, env=config.env(), stdout=log, stderr=subprocess.STDOUT)
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None

        assert wait_until(ready, timeout=30) and proc.poll() is None
        with httpx.Client(timeout=5) as client:
            for round_ in range(1, rounds + 1):
                tag = f"1.0.{round_}"
                push_tags(registry_anon, "soak/web", tag)
                event = {"action": "push", "target": {"repository": "soak/web", "tag": tag}}
                envelope = {"events": [{**event, "request": {"host": registry_anon.host}}]}
                answer = client.post(
                    f"http://127.0.0.1:{webhook}/webhook?type=distribution", content=json.dumps(envelope)
                )
                assert answer.status_code == 202, answer.text
                expected = kustomization(images["web"], tag)
                assert wait_until(
                    lambda want=expected: git_server.read_file("soak", "web/kustomization.yaml") == want, timeout=20
                ), f"round {round_}: {tag} never written"
                samples.append(_proc_stats(proc.pid))

            def pushes() -> float:
                text = client.get(f"http://127.0.0.1:{health}/metrics").text
                lines = [line for line in text.splitlines() if line.startswith("image_updater_git_pushes_total ")]
                return float(lines[0].split()[1]) if lines else -1.0

            # the last push is on the remote a moment before its cycle returns and is counted
            wait_until(lambda: pushes() >= rounds, timeout=10)
            pushed = pushes()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    elapsed = time.monotonic() - started

    base_rss, base_fds, base_threads = samples[WARM_UP - 1]
    end_rss = max(s[0] for s in samples[-5:])
    end_fds = max(s[1] for s in samples[-5:])
    end_threads = max(s[2] for s in samples[-5:])
    print(
        f"soak: {rounds} rounds in {elapsed:.1f} s; after {WARM_UP} rounds RSS {base_rss:.1f} MB, {base_fds} fds, "
        f"{base_threads} threads; at the end RSS {end_rss:.1f} MB, {end_fds} fds, {end_threads} threads"
    )
    assert end_rss - base_rss <= RSS_BOUND_MB
    assert end_fds - base_fds <= FD_BOUND
    assert end_threads - base_threads <= THREAD_BOUND

    # every intended update exactly once, nothing else written
    assert git_server.commit_count("soak") == rounds + 1
    messages = bodies(git_server, "soak")[:-1]
    for round_ in range(1, rounds + 1):
        change = f"{images['web']}: 1.0.{round_ - 1} -> 1.0.{round_}"
        assert sum(change in m for m in messages) == 1, change
    assert git_server.read_file("soak", "static/kustomization.yaml") == static_text
    assert not any(images["static"] in m for m in messages)
    fsck(git_server, "soak")
    assert pushed == rounds  # one push per update: none repeated, none lost
