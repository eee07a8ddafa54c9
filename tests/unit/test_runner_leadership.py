"""The service loop under leader election: cycles run only while leading, the first cycle runs when
leadership begins, and a replica that stops leading abandons its running cycle at once (the service's
other tasks go on). The leader check is a plain function here; the Lease itself is tested in
tests/adapters/test_k8s_lease.py and with real processes in tests/integration/test_kubernetes_e2e.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from image_updater.service.runner import Runner
from tests.unit.test_runner import APPS, FakeCycles, push, soon

pytestmark = pytest.mark.anyio



@pytest.fixture(autouse=True)
def logged() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as events:
        yield events


class Leadership:
    """The leader check the runner asks."""

    def __init__(self, leading: bool = False) -> None:
        self.leading = leading

    def __call__(self) -> bool:
        return self.leading


def make_runner(cycles: FakeCycles, leader: Leadership, **kwargs: Any) -> Runner:
    return Runner(discover=lambda: APPS, cycle=cycles, interval=3600, leader=leader, **kwargs)


async def test_a_follower_runs_no_cycle_and_is_not_ready() -> None:
    cycles, leader = FakeCycles(), Leadership(leading=False)
    runner = make_runner(cycles, leader)

    assert await runner.run_full_cycle() is None
    runner.notify([push("127.0.0.1:5000/team/web")])
    assert await runner.run_pending() is None

    assert cycles.calls == []
    assert runner.readiness() == (False, "not the leader: another replica runs the cycles")


async def test_starting_to_lead_runs_a_full_cycle_at_once_and_makes_the_replica_ready() -> None:
    cycles, leader = FakeCycles(), Leadership(leading=False)
    runner = make_runner(cycles, leader)
    runner.start()
    await asyncio.sleep(0.05)
    assert cycles.calls == []  # the schedule's first run waits for leadership

    leader.leading = True
    runner.started_leading()
    await soon(cycles.started.wait())
    async with asyncio.timeout(5):
        while not runner.readiness()[0]:
            await asyncio.sleep(0.005)
    await runner.stop(grace_s=1)

    assert cycles.calls == [["web", "api", "docs"]]


async def test_losing_leadership_abandons_the_running_cycle_but_not_the_service(
    logged: list[dict[str, Any]],
) -> None:
    cycles, leader = FakeCycles(), Leadership(leading=True)
    cycles.gate = asyncio.Event()  # the cycle would run until the test lets it
    runner = make_runner(cycles, leader)
    full = asyncio.create_task(runner.run_full_cycle())
    await soon(cycles.started.wait())
    runner.notify([push("127.0.0.1:5000/team/web")])

    leader.leading = False
    runner.stopped_leading()

    assert await soon(full) is None  # the cycle ended without a result; the task that ran it did not fail
    assert cycles.running == 0 and not runner.busy and runner.pending == 0
    assert any(e["event"] == "lost leadership: abandoning the current cycle" for e in logged)
    assert runner.readiness()[0] is False

    leader.leading = True  # leading again: cycles run as before
    cycles.gate.set()
    assert await soon(runner.run_full_cycle()) is not None
    assert len(cycles.calls) == 2
