"""The service loop: cycles never overlap, webhook bursts coalesce into one targeted cycle, a push during
a cycle queues one follow-up, readiness and liveness, and a clean stop. Sleeping is injected: no test
waits out the coalescing window for real."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import structlog

from image_updater.errors import GitError
from image_updater.model.ref import parse_image_name
from image_updater.model.spec import AppSource, AppSpec, ImageSpec, WriteBack, WriteBackMethod
from image_updater.service.cycle import AppOutcome, CycleResult
from image_updater.service.metrics import ServiceMetrics
from image_updater.service.runner import Runner
from image_updater.service.webhooks import PushEvent

pytestmark = pytest.mark.anyio



@pytest.fixture(autouse=True)
def logged() -> Iterator[list[dict[str, Any]]]:
    """The log events of the test (and no output to a stream an earlier test may have closed)."""
    with structlog.testing.capture_logs() as events:
        yield events


def app(name: str, *images: str) -> AppSpec:
    specs = tuple(ImageSpec(name=parse_image_name(i), written_name=i) for i in images)
    return AppSpec(name, "argocd", AppSource("http://git/c.git"), specs, WriteBack(method=WriteBackMethod.GIT))


APPS = [
    app("web", "127.0.0.1:5000/team/web"),
    app("api", "127.0.0.1:5000/team/api", "nginx"),
    app("docs", "ghcr.io/org/docs"),
]


async def soon(waiting: Any) -> Any:
    """Await with a bound, so a broken runner fails the test instead of hanging it."""
    return await asyncio.wait_for(waiting, 5)


def push(image: str, tag: str = "2.0") -> PushEvent:
    host, _, repo = image.partition("/")
    return PushEvent(host, repo, tag)


class FakeCycles:
    """A cycle function that records which Applications each cycle got, and can be held open."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.running = 0
        self.max_running = 0
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, apps: Sequence[AppSpec]) -> CycleResult:
        self.calls.append([a.name for a in apps])
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_with is not None:
                raise self.fail_with
            return CycleResult(apps=[AppOutcome(a) for a in apps])
        finally:
            self.running -= 1


class ManualSleep:
    """Stands in for asyncio.sleep in the coalescing window: returns when the test says so."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.waiting.set()
        await self.release.wait()
        self.release.clear()
        self.waiting.clear()


def make_runner(cycles: FakeCycles, **kwargs: Any) -> Runner:
    return Runner(discover=lambda: APPS, cycle=cycles, interval=3600, **kwargs)


async def test_a_burst_of_pushes_runs_one_cycle_for_the_applications_that_use_the_image() -> None:
    cycles, sleep = FakeCycles(), ManualSleep()
    runner = make_runner(cycles, sleep=sleep, coalesce_s=0.25, quiet_s=0.05)
    worker = asyncio.create_task(runner._webhook_worker())

    runner.notify([push("127.0.0.1:5000/team/web", "2.0.1")])
    await soon(sleep.waiting.wait())  # the window is open
    for tag in ("2.0.2", "2.0.3"):
        runner.notify([push("127.0.0.1:5000/team/web", tag)])
    sleep.release.set()  # the burst went on during the pause: wait again
    await soon(_next_pause(sleep, 2))
    runner.notify([push("127.0.0.1:5000/team/web", "2.0.4")])
    sleep.release.set()
    await soon(_next_pause(sleep, 3))
    sleep.release.set()  # a quiet pause: the burst is over
    await soon(cycles.started.wait())
    await asyncio.sleep(0)

    assert cycles.calls == [["web"]] and sleep.calls == [0.05, 0.05, 0.05] and runner.pending == 0
    worker.cancel()


async def test_one_push_runs_after_a_quiet_pause_not_the_whole_window() -> None:
    cycles, sleep = FakeCycles(), ManualSleep()
    runner = make_runner(cycles, sleep=sleep, coalesce_s=0.3, quiet_s=0.05)
    worker = asyncio.create_task(runner._webhook_worker())

    runner.notify([push("127.0.0.1:5000/team/web", "2.0.1")])
    await soon(sleep.waiting.wait())
    sleep.release.set()
    await soon(cycles.started.wait())

    assert sleep.calls == [0.05] and cycles.calls == [["web"]]
    worker.cancel()


async def test_a_burst_that_never_pauses_runs_when_the_window_ends() -> None:
    cycles, sleep = FakeCycles(), ManualSleep()
    runner = make_runner(cycles, sleep=sleep, coalesce_s=0.12, quiet_s=0.05)
    worker = asyncio.create_task(runner._webhook_worker())

    runner.notify([push("127.0.0.1:5000/team/web", "1")])
    for n in range(2, 5):
        await soon(_next_pause(sleep, n - 1))
        runner.notify([push("127.0.0.1:5000/team/web", str(n))])  # during every pause
        sleep.release.set()
    await soon(cycles.started.wait())

    assert sleep.calls == pytest.approx([0.05, 0.05, 0.02]) and cycles.calls == [["web"]]
    worker.cancel()


async def _next_pause(sleep: ManualSleep, count: int) -> None:
    """Until the worker is in its ``count``-th pause."""
    while len(sleep.calls) < count or not sleep.waiting.is_set():
        await asyncio.sleep(0)


async def test_pushes_for_several_images_run_every_application_that_uses_one_of_them() -> None:
    cycles = FakeCycles()
    runner = make_runner(cycles)
    runner.notify([push("127.0.0.1:5000/team/api"), push("docker.io/library/nginx"), push("quay.io/x/y")])

    await runner.run_pending()

    assert cycles.calls == [["api"]]


async def test_a_push_no_application_uses_runs_no_cycle() -> None:
    cycles = FakeCycles()
    runner = make_runner(cycles)
    runner.notify([push("127.0.0.1:5001/team/web")])  # another registry

    assert await runner.run_pending() is None
    assert cycles.calls == []


async def test_cycles_never_overlap_and_a_push_during_a_cycle_queues_one_follow_up() -> None:
    cycles, sleep = FakeCycles(), ManualSleep()
    cycles.gate = asyncio.Event()
    runner = make_runner(cycles, sleep=sleep)
    worker = asyncio.create_task(runner._webhook_worker())
    full = asyncio.create_task(runner.run_full_cycle())
    await soon(cycles.started.wait())

    for tag in ("3.0", "3.1", "3.2"):  # three pushes while the full cycle runs
        runner.notify([push("ghcr.io/org/docs", tag)])
    await soon(sleep.waiting.wait())
    sleep.release.set()  # the window closes while the full cycle still holds the lock
    await asyncio.sleep(0.01)
    assert cycles.calls == [["web", "api", "docs"]]

    cycles.gate.set()
    await soon(full)
    async with asyncio.timeout(5):
        while len(cycles.calls) < 2:
            await asyncio.sleep(0)
    await asyncio.sleep(0.01)

    assert cycles.calls == [["web", "api", "docs"], ["docs"]]
    assert cycles.max_running == 1 and not sleep.waiting.is_set()
    worker.cancel()


async def test_a_full_cycle_covers_the_pushes_waiting_when_it_starts() -> None:
    cycles = FakeCycles()
    runner = make_runner(cycles)
    runner.notify([push("127.0.0.1:5000/team/web")])

    await runner.run_full_cycle()

    assert runner.pending == 0 and await runner.run_pending() is None
    assert cycles.calls == [["web", "api", "docs"]]


async def test_ready_after_the_first_full_cycle_only() -> None:
    cycles = FakeCycles()
    runner = make_runner(cycles)
    assert runner.readiness()[0] is False

    runner.notify([push("127.0.0.1:5000/team/web")])
    await runner.run_pending()
    assert runner.readiness() == (False, "the first cycle has not finished")

    await runner.run_full_cycle()
    assert runner.readiness() == (True, "ready")


async def test_a_failing_cycle_is_counted_and_the_service_goes_on(logged: list[dict[str, Any]]) -> None:
    cycles, metrics = FakeCycles(), ServiceMetrics()
    runner = make_runner(cycles, metrics=metrics)
    cycles.fail_with = GitError("clone failed")

    assert await runner.run_full_cycle() is None
    cycles.fail_with = None
    assert await runner.run_full_cycle() is not None

    sample = metrics.registry.get_sample_value
    assert sample("image_updater_cycles_total", {"kind": "scheduled", "outcome": "error"}) == 1
    assert sample("image_updater_cycles_total", {"kind": "scheduled", "outcome": "ok"}) == 1
    assert runner.readiness()[0] is True
    failed = [e for e in logged if e["event"] == "cycle failed"]
    assert [(e["cycle"], e["error"], e["log_level"]) for e in failed] == [("scheduled", "clone failed", "error")]


async def test_discovery_may_be_a_coroutine() -> None:
    cycles = FakeCycles()

    async def discover() -> list[AppSpec]:
        return APPS[:1]

    runner = Runner(discover=discover, cycle=cycles, interval=60)
    await runner.run_full_cycle()
    assert cycles.calls == [["web"]]


async def test_liveness_fails_when_one_cycle_runs_far_too_long() -> None:
    now = [100.0]
    cycles = FakeCycles()
    cycles.gate = asyncio.Event()
    runner = make_runner(cycles, clock=lambda: now[0], stall_after_s=600)
    task = asyncio.create_task(runner.run_full_cycle())
    await soon(cycles.started.wait())

    now[0] += 599
    assert runner.health() == (True, "ok")
    now[0] += 2
    assert runner.health() == (False, "a cycle has been running for 601s")

    cycles.gate.set()
    await task
    assert runner.health() == (True, "ok")


async def test_stop_lets_the_current_cycle_finish_then_takes_no_more() -> None:
    cycles = FakeCycles()
    cycles.gate = asyncio.Event()
    runner = make_runner(cycles)
    task = asyncio.create_task(runner.run_full_cycle())
    await soon(cycles.started.wait())

    stopping = asyncio.create_task(runner.stop(grace_s=5))
    await asyncio.sleep(0.01)
    assert runner.readiness() == (False, "shutting down") and not stopping.done()
    cycles.gate.set()
    await soon(stopping)

    assert (await task) is not None  # finished, not abandoned
    assert runner.notify([push("127.0.0.1:5000/team/web")]) == 0
    assert await runner.run_full_cycle() is None and len(cycles.calls) == 1


async def test_stop_abandons_a_cycle_that_outlives_the_grace_period() -> None:
    cycles = FakeCycles()
    cycles.gate = asyncio.Event()  # never set
    runner = make_runner(cycles)
    task = asyncio.create_task(runner.run_full_cycle())
    await soon(cycles.started.wait())

    await runner.stop(grace_s=0.01)

    assert task.cancelled() and cycles.running == 0 and not runner.busy


async def test_the_schedule_runs_the_first_cycle_at_start() -> None:
    cycles = FakeCycles()
    runner = make_runner(cycles)
    runner.start()
    async with asyncio.timeout(5):
        await soon(cycles.started.wait())
        while not runner.readiness()[0]:
            await asyncio.sleep(0.005)
    await runner.stop(grace_s=1)

    assert cycles.calls == [["web", "api", "docs"]]
