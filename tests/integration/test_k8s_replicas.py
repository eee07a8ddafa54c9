"""Several replicas, one leader: only the leader writes, and a leader that dies hands over in time.

The replicas run the product's :class:`LeaderElector` against the API server over HTTP with short
timings (leases of 1-2 s). Hand-over times are measured and printed (``-s`` shows them).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from lightkube import AsyncClient

from image_updater.adapters.k8s.client import build_client
from image_updater.adapters.k8s.lease import LeaderElector, LeaseSettings
from tests.harness.kubetarget import KubeTarget, application
from tests.integration import k8s_replica

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
FAST = {"lease_duration_s": 1, "renew_deadline_s": 0.6, "renew_interval_s": 0.15, "retry_interval_s": 0.1}
#: scheduling and HTTP on a loaded 2-core machine, on top of the lease duration
SLACK_S = 0.3



@pytest.fixture
async def client(kube: KubeTarget) -> AsyncIterator[AsyncClient]:
    built = build_client(kube.kubeconfig, context=kube.context)
    yield built
    await built.close()


async def wait_for(condition: Any, timeout: float = 5.0) -> float:
    """Poll ``condition`` every 10 ms; return when it held (monotonic seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
    return time.monotonic()


async def test_one_leader_at_a_time_and_a_stopped_leader_hands_over_within_the_lease(
    kube: KubeTarget, client: AsyncClient
) -> None:
    ns = kube.namespace("elect")
    a = LeaderElector(client, LeaseSettings(name="l", namespace=ns, identity="a", release_on_stop=False, **FAST))
    b = LeaderElector(client, LeaseSettings(name="l", namespace=ns, identity="b", release_on_stop=False, **FAST))
    a.start()
    await wait_for(lambda: a.is_leader)
    b.start()
    samples = []
    for _ in range(60):  # 1.2 s, several lease lifetimes
        samples.append((a.is_leader, b.is_leader))
        await asyncio.sleep(0.02)
    assert set(samples) == {(True, False)}

    await a.stop()  # stops renewing without releasing, as a crashed or hung leader does
    stopped = time.monotonic()
    took_over = await wait_for(lambda: b.is_leader)
    handover = took_over - stopped
    print(f"\nin-process hand-over after the leader stopped renewing: {handover:.3f} s (lease 1 s)")
    assert handover <= FAST["lease_duration_s"] + SLACK_S
    await b.stop()


async def test_a_clean_stop_releases_the_lease_and_hands_over_at_once(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace("release")
    a = LeaderElector(client, LeaseSettings(name="l", namespace=ns, identity="a", **FAST))
    b = LeaderElector(client, LeaseSettings(name="l", namespace=ns, identity="b", **FAST))
    async with a:
        await wait_for(lambda: a.is_leader)
        b.start()
        await asyncio.sleep(0.3)
        assert not b.is_leader
    stopped = time.monotonic()
    handover = await wait_for(lambda: b.is_leader) - stopped
    print(f"\nhand-over after a clean stop (lease released): {handover:.3f} s")
    assert handover <= FAST["retry_interval_s"] + SLACK_S
    await b.stop()


# -- two processes ----------------------------------------------------------------------------------


class Replica:
    """``tests/integration/k8s_replica.py`` as a child process."""

    def __init__(self, kube: KubeTarget, namespace: str, identity: str) -> None:
        self.identity = identity
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.k8s_replica", str(kube.kubeconfig_path), namespace, identity],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        line = self._stdout.readline().strip()
        assert line == "ready", f"replica {identity} did not start: {line}{self._stdout.read()}"

    @property
    def _stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> str:
        if self.process.poll() is None:
            self.kill()
        return self._stdout.read()


@pytest.fixture
def replicas(kube: KubeTarget) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.close()


def holder(kube: KubeTarget, ns: str) -> str | None:
    try:
        return kube.get("coordination.k8s.io/v1", "Lease", ns, "replicas")["spec"].get("holderIdentity")
    except Exception:
        return None


def written_tag(kube: KubeTarget, ns: str) -> str:
    images = kube.get("argoproj.io/v1alpha1", "Application", ns, "web")["spec"]["source"]["kustomize"]["images"]
    return str(images[0]).split(":", 1)[1]


async def test_two_replica_processes_only_the_leader_writes_and_killing_it_hands_over(
    kube: KubeTarget, replicas: list[Replica]
) -> None:
    ns = kube.namespace("replicas")
    source = {"repoURL": "https://git.example.com/c.git", "path": "web", "kustomize": {"images": ["nginx:0"]}}
    kube.create(application("web", ns, images="nginx", source=source))
    replicas.append(Replica(kube, ns, "first"))
    await wait_for(lambda: holder(kube, ns) == "first")
    replicas.append(Replica(kube, ns, "second"))
    await wait_for(lambda: written_tag(kube, ns).startswith("first-"))
    await asyncio.sleep(1.0)  # the second runs its election meanwhile and must not write
    assert written_tag(kube, ns).startswith("first-")

    replicas[0].kill()
    killed = time.monotonic()
    took_over = await wait_for(lambda: holder(kube, ns) == "second", timeout=10)
    handover = took_over - killed
    await wait_for(lambda: written_tag(kube, ns).startswith("second-"), timeout=5)
    print(f"\nhand-over after SIGKILL of the leader process: {handover:.3f} s (lease {k8s_replica.LEASE_DURATION_S} s)")
    assert handover <= k8s_replica.LEASE_DURATION_S + SLACK_S

    if kube.fake is not None:
        patches = [r for r in kube.fake.requests_to("PATCH", f"/namespaces/{ns}/applications/web") if r.status == 200]
        writers = [p.body["spec"]["source"]["kustomize"]["images"][0].split(":")[1].split("-")[0] for p in patches]
        # every write of the first came before the kill, every write of the second after it took over
        assert writers == sorted(writers, key=["first", "second"].index) and set(writers) == {"first", "second"}
        first_writes = [p.received_at for p, w in zip(patches, writers, strict=True) if w == "first"]
        second_writes = [p.received_at for p, w in zip(patches, writers, strict=True) if w == "second"]
        assert max(first_writes) < killed < min(second_writes)
        assert min(second_writes) >= took_over - 0.05  # none before its leadership (polling granularity)
