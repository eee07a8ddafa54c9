"""Leader election, one step at a time on a fake clock, against the Lease API over HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from lightkube import AsyncClient

from image_updater.adapters.k8s.client import build_client
from image_updater.adapters.k8s.lease import LeaderElector, LeaseSettings
from image_updater.errors import ConfigError, ImageUpdaterError
from tests.harness.kubeapi import RecordedRequest, Reply
from tests.harness.kubetarget import KubeTarget

pytestmark = pytest.mark.anyio
LEASE = ("coordination.k8s.io/v1", "Lease")
START = 1_700_000_000.0



@pytest.fixture
async def client(kube: KubeTarget) -> AsyncIterator[AsyncClient]:
    built = build_client(kube.kubeconfig, context=kube.context)
    yield built
    await built.close()


class Clock:
    """Epoch seconds that only move when a test moves them."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def settings(ns: str, identity: str, **overrides: Any) -> LeaseSettings:
    values: dict[str, Any] = {
        "name": "leader",
        "namespace": ns,
        "identity": identity,
        "lease_duration_s": 15,
        "renew_deadline_s": 10.0,
        "renew_interval_s": 2.0,
        "retry_interval_s": 2.0,
        **overrides,
    }
    return LeaseSettings(**values)


def electors(client: AsyncClient, ns: str, clock: Clock, *names: str, **kw: Any) -> list[LeaderElector]:
    return [LeaderElector(client, settings(ns, name), clock=clock, **kw) for name in names]


async def test_the_first_creates_the_lease_and_another_takes_over_only_once_it_expired(
    kube: KubeTarget, client: AsyncClient
) -> None:
    ns, clock = kube.namespace("lease"), Clock()
    a, b = electors(client, ns, clock, "a", "b")
    assert await a.try_acquire_or_renew()
    lease = kube.get(*LEASE, ns, "leader")["spec"]
    assert (lease["holderIdentity"], lease["leaseDurationSeconds"], lease["leaseTransitions"]) == ("a", 15, 0)
    assert not await b.try_acquire_or_renew() and b.holder == "a"
    clock.now += 14.9
    assert not await b.try_acquire_or_renew()
    clock.now += 0.2
    assert await b.try_acquire_or_renew()
    taken = kube.get(*LEASE, ns, "leader")["spec"]
    assert (taken["holderIdentity"], taken["leaseTransitions"]) == ("b", 1)
    assert taken["acquireTime"] != lease["acquireTime"]
    assert not await a.try_acquire_or_renew() and a.holder == "b"


async def test_renewing_moves_the_renew_time_and_keeps_the_acquire_time(kube: KubeTarget, client: AsyncClient) -> None:
    ns, clock = kube.namespace("lease"), Clock()
    (a,) = electors(client, ns, clock, "a")
    assert await a.try_acquire_or_renew()
    first = kube.get(*LEASE, ns, "leader")
    clock.now += 2.5
    assert await a.try_acquire_or_renew()
    second = kube.get(*LEASE, ns, "leader")
    assert second["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    assert second["spec"]["renewTime"] != first["spec"]["renewTime"] and second["spec"]["leaseTransitions"] == 0
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def both_read_before_either_writes(fake: Any) -> Callable[[RecordedRequest], None]:
    """A hook holding each write of the Lease until two have arrived: then both replicas have read the
    same version before either write is applied, and they race on it."""
    barrier = threading.Barrier(2, timeout=5)
    held: list[RecordedRequest] = []

    def hook(request: RecordedRequest) -> None:
        if request.method in ("POST", "PUT") and "/leases" in request.path and len(held) < 2:
            held.append(request)
            barrier.wait()

    return fake.before(hook)


@pytest.mark.parametrize("existing", [False, True], ids=["free-create", "expired-replace"])
async def test_of_two_racing_replicas_exactly_one_wins(kube: KubeTarget, client: AsyncClient, existing: bool) -> None:
    fake = kube.require_fake()
    ns, clock = kube.namespace("race"), Clock()
    if existing:
        (old,) = electors(client, ns, clock, "old")
        assert await old.try_acquire_or_renew()
        clock.now += 60
    a, b = electors(client, ns, clock, "a", "b")
    both_read_before_either_writes(fake)
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True]
    winner = "a" if results[0] else "b"
    assert kube.get(*LEASE, ns, "leader")["spec"]["holderIdentity"] == winner
    writes = [r.status for r in fake.requests if r.method in ("POST", "PUT") and "/leases" in r.path]
    assert sorted(writes[-2:]) == [200 if existing else 201, 409]


async def test_release_frees_the_lease_for_an_immediate_takeover(kube: KubeTarget, client: AsyncClient) -> None:
    ns, clock = kube.namespace("release"), Clock()
    a, b = electors(client, ns, clock, "a", "b")
    await a.step()
    assert a.is_leader and not await b.try_acquire_or_renew()
    assert await a.release()
    released = kube.get(*LEASE, ns, "leader")["spec"]
    assert released.get("holderIdentity") is None and released["leaseDurationSeconds"] == 1
    assert await b.try_acquire_or_renew()  # no waiting for the 15 s lease
    assert not await a.release()  # not ours any more


async def test_a_leader_that_cannot_renew_stops_leading_at_the_deadline(kube: KubeTarget, client: AsyncClient) -> None:
    fake = kube.require_fake()
    ns, clock = kube.namespace("deadline"), Clock()
    stopped: list[float] = []
    (a,) = electors(client, ns, clock, "a", on_stopped_leading=lambda: stopped.append(clock.now))
    assert await a.step() == 2.0 and a.is_leader
    fake.before(lambda r: Reply(500, {"kind": "Status", "code": 500}) if "/leases" in r.path else None)
    waits = []
    while a.is_leader:
        clock.now += 2.0
        waits.append(await a.step())
    assert stopped == [START + 10.0]  # the renew deadline, before the 15 s lease could pass to another
    assert waits == [2.0, 2.0, 2.0, 2.0, 2.0]
    with pytest.raises(ImageUpdaterError, match=r"leader election on Lease .*: HTTP 500"):
        await a.try_acquire_or_renew()


async def test_a_leader_that_finds_another_holder_stops_at_once(kube: KubeTarget, client: AsyncClient) -> None:
    ns, clock = kube.namespace("usurped"), Clock()
    (a,) = electors(client, ns, clock, "a")
    await a.step()
    stamp = "2023-11-14T22:13:21.000000Z"  # START + 1 s
    kube.merge_patch(*LEASE, ns, "leader", {"spec": {"holderIdentity": "intruder", "renewTime": stamp}})
    clock.now += 2.0
    await a.step()
    assert not a.is_leader and a.holder == "intruder"


class AnnotatingClient:
    """The product's client, but someone annotates the Lease right before each of its replaces."""

    def __init__(self, client: AsyncClient, kube: KubeTarget, ns: str) -> None:
        self._client, self._kube, self._ns, self.count = client, kube, ns, 0
        self.active = False

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._client.get(*args, **kwargs)

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        return await self._client.create(*args, **kwargs)

    async def replace(self, *args: Any, **kwargs: Any) -> Any:
        if self.active:
            self.count += 1
            self._kube.merge_patch(*LEASE, self._ns, "leader", {"metadata": {"annotations": {"n": str(self.count)}}})
        return await self._client.replace(*args, **kwargs)


async def test_a_conflict_on_its_own_renewal_does_not_dethrone_the_leader_before_the_deadline(
    kube: KubeTarget, client: AsyncClient
) -> None:
    ns, clock = kube.namespace("conflict"), Clock()
    meddling = AnnotatingClient(client, kube, ns)
    a = LeaderElector(meddling, settings(ns, "a"), clock=clock)  # type: ignore[arg-type]
    await a.step()
    clock.now += 2.0
    await a.step()
    assert a.is_leader and meddling.count == 0
    meddling.active = True
    clock.now += 2.0
    await a.step()  # the renewal meets 409, but the Lease is still ours: it still leads
    assert a.is_leader and a.holder == "a" and meddling.count == 1
    clock.now += 8.0
    await a.step()  # ten seconds since the last renewal: the deadline
    assert not a.is_leader
    meddling.active = False
    clock.now += 2.0
    assert await a.step() == 2.0 and a.is_leader  # renewing works again, and so does leading


async def test_a_follower_wakes_up_at_the_expiry_and_honours_retry_after(kube: KubeTarget, client: AsyncClient) -> None:
    ns, clock = kube.namespace("follow"), Clock()
    a, b = electors(client, ns, clock, "a", "b")
    await a.step()
    clock.now += 14.7  # 0.3 s before a's lease expires
    assert await b.step() == pytest.approx(0.31, abs=1e-6)
    clock.now += 0.31
    await b.step()
    assert b.is_leader
    fake = kube.require_fake()
    fake.before(lambda r: Reply(429, {"code": 429}, {"Retry-After": "7"}) if "/leases" in r.path else None)
    clock.now += 1
    assert await a.step() == 7.0


def test_settings_must_leave_room_for_renewals() -> None:
    with pytest.raises(ConfigError, match="renew_interval < renew_deadline < lease_duration"):
        LeaseSettings(identity="a", lease_duration_s=2, renew_deadline_s=3.0, renew_interval_s=1.0)
    assert LeaseSettings().identity != LeaseSettings().identity  # hostname plus a random part
