"""Leader election among replicas with a ``coordination.k8s.io/v1`` Lease, as client-go does it.

A replica acquires the Lease when it is free (no holder) or expired (``renewTime`` +
``leaseDurationSeconds`` has passed), then renews it every ``renew_interval_s``. Writes to the Lease
are conditional on its ``resourceVersion``, so of two replicas racing for it one wins and the other
gets ``409``. A follower tries every ``retry_interval_s`` and, when it sees the expiry coming, wakes up
at the expiry itself, so it takes over within one lease duration of the leader's last renewal. A
leader that cannot renew for ``renew_deadline_s`` (shorter than the lease) stops leading before
anyone else may start; one that finds another holder stops at once. On a clean stop the Lease is
released (holder cleared) so a follower takes over without waiting.

The expiry is judged with the holder's ``renewTime``, so replicas' clocks must agree to well within
``lease_duration_s - renew_deadline_s`` (NTP-synchronised nodes do).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import structlog
from lightkube import AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from image_updater.adapters.k8s.client import API_ERRORS, Sleep, retry_after, status_code, translate
from image_updater.errors import ConfigError, ImageUpdaterError

#: how much after the expiry a waiting follower tries, so that it does not arrive a hair early
_EXPIRY_SLACK_S = 0.01


def default_identity() -> str:
    """``<hostname>_<random>``: unique even when two replicas share a host name."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseSettings:
    """Which Lease, who we are, and the timings (client-go's defaults: 15 s, 10 s, 2 s)."""

    #: the Lease's name
    name: str = "image-updater-leader"
    #: the Lease's namespace (usually the replicas' own)
    namespace: str = "argocd"
    #: this replica's holder identity
    identity: str = field(default_factory=default_identity)
    #: how long a Lease stays valid after its last renewal (whole seconds, as the API stores it)
    lease_duration_s: int = 15
    #: a leader that could not renew for this long stops leading
    renew_deadline_s: float = 10.0
    #: how often the leader renews
    renew_interval_s: float = 2.0
    #: how often a follower tries to acquire
    retry_interval_s: float = 2.0
    #: clear the holder on a clean stop, so that a follower takes over at once
    release_on_stop: bool = True

    def __post_init__(self) -> None:
        if not self.identity:
            raise ConfigError("the holder identity is empty", key="leader_election.identity")
        if not 0 < self.renew_interval_s < self.renew_deadline_s < self.lease_duration_s:
            raise ConfigError(
                "leader election needs 0 < renew_interval < renew_deadline < lease_duration "
                f"(got {self.renew_interval_s}, {self.renew_deadline_s}, {self.lease_duration_s})",
                key="leader_election",
            )
        if self.retry_interval_s <= 0:
            raise ConfigError("retry_interval must be positive", key="leader_election.retry_interval")


def _ts(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class LeaderElector:
    """One replica's view of the election; run it with :meth:`run`, ``async with``, or :meth:`start`.

    ``clock`` gives epoch seconds (written into the Lease and used for every deadline); ``sleep``
    waits. ``on_started_leading`` / ``on_stopped_leading`` are called (synchronously) on changes.
    """

    def __init__(
        self,
        client: AsyncClient,
        settings: LeaseSettings,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        log: Any = None,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._log = (log if log is not None else structlog.get_logger()).bind(
            lease=f"{settings.namespace}/{settings.name}", identity=settings.identity
        )
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._leading = asyncio.Event()
        self._last_renew: float | None = None
        self._expiry: float | None = None
        self._task: asyncio.Task[None] | None = None
        #: the holder last seen in the Lease (``None`` when free or not read yet)
        self.holder: str | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this replica leads now; check it right before every write."""
        return self._leading.is_set()

    async def wait_until_leader(self) -> None:
        """Return once this replica leads."""
        await self._leading.wait()

    # -- one step ------------------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: create, take over or renew the Lease; ``True`` when we hold it afterwards.

        Does not change :attr:`is_leader` (the loop does). Raises :class:`ImageUpdaterError` when the
        API cannot be asked.
        """
        try:
            return await self._attempt()
        except API_ERRORS as e:
            raise translate(e, f"leader election on Lease {self._where}", ImageUpdaterError) from e

    @property
    def _where(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"

    async def _attempt(self) -> bool:
        s, now = self.settings, self._clock()
        stamp = dt.datetime.fromtimestamp(now, dt.UTC)
        try:
            lease = await self._client.get(Lease, s.name, namespace=s.namespace)
        except API_ERRORS as e:
            if status_code(e) != 404:
                raise
            fresh = Lease(
                metadata=ObjectMeta(name=s.name, namespace=s.namespace),
                spec=LeaseSpec(
                    holderIdentity=s.identity,
                    leaseDurationSeconds=s.lease_duration_s,
                    acquireTime=stamp,
                    renewTime=stamp,
                    leaseTransitions=0,
                ),
            )
            return await self._write(self._client.create(fresh), now)
        spec = lease.spec or LeaseSpec()
        holder = spec.holderIdentity or None
        self.holder = holder
        renewed = _ts(spec.renewTime)
        duration = spec.leaseDurationSeconds or s.lease_duration_s
        self._expiry = renewed + duration if renewed is not None and holder else None
        if holder and holder != s.identity and self._expiry is not None and now < self._expiry:
            return False
        ours = holder == s.identity
        lease.spec = LeaseSpec(
            holderIdentity=s.identity,
            leaseDurationSeconds=s.lease_duration_s,
            acquireTime=spec.acquireTime if ours and spec.acquireTime else stamp,
            renewTime=stamp,
            leaseTransitions=(spec.leaseTransitions or 0) + (0 if ours else 1),
        )
        return await self._write(self._client.replace(lease), now)

    async def _write(self, request: Any, now: float) -> bool:
        try:
            await request
        except API_ERRORS as e:
            if status_code(e) == 409:  # someone else wrote first (created it, or renewed/took it)
                return False
            raise
        self.holder = self.settings.identity
        self._expiry = now + self.settings.lease_duration_s
        return True

    async def release(self) -> bool:
        """Clear the holder if it is us (``leaseDurationSeconds: 1``, as client-go); ``True`` if done."""
        s = self.settings
        try:
            lease = await self._client.get(Lease, s.name, namespace=s.namespace)
            if lease.spec is None or lease.spec.holderIdentity != s.identity:
                return False
            stamp = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
            lease.spec = LeaseSpec(
                holderIdentity=None,
                leaseDurationSeconds=1,
                acquireTime=stamp,
                renewTime=stamp,
                leaseTransitions=lease.spec.leaseTransitions,
            )
            await self._client.replace(lease)
        except API_ERRORS as e:
            self._log.warning("could not release the lease", error=translate(e, "release", ImageUpdaterError).message)
            return False
        self._log.info("lease released")
        return True

    # -- the loop ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Acquire, renew and watch for expiry until cancelled; on cancel, release if configured."""
        try:
            while True:
                await self._sleep(await self.step())
        finally:
            was_leading = self.is_leader
            self._stop_leading("stopped")
            if was_leading and self.settings.release_on_stop:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(self.release(), timeout=max(self.settings.renew_interval_s, 1.0))

    async def step(self) -> float:
        """One turn of :meth:`run`: try to acquire or renew, update :attr:`is_leader` (calling the
        callbacks), and return how many seconds to wait before the next turn."""
        s = self.settings
        hinted: float | None = None
        started = self._clock()  # the deadline counts from when the renewal was sent, not answered
        try:
            held: bool | None = await self._attempt()
        except API_ERRORS as e:
            held, hinted = None, retry_after(e)
            self._log.warning("leader election request failed", error=translate(e, "lease", ImageUpdaterError).message)
        now = self._clock()
        if held:
            self._last_renew = started
            if not self.is_leader:
                self._leading.set()
                self._log.info("started leading")
                if self._on_started:
                    self._on_started()
            wait = s.renew_interval_s
        elif self.is_leader:
            if held is False and self.holder != s.identity:
                self._stop_leading(f"the lease is held by {self.holder}")
            elif self._last_renew is None or now - self._last_renew >= s.renew_deadline_s:
                self._stop_leading("could not renew before the deadline")
            wait = s.renew_interval_s if self.is_leader else s.retry_interval_s
        else:
            wait = s.retry_interval_s
        if not self.is_leader and self._expiry is not None and now < self._expiry:
            wait = min(wait, self._expiry - now + _EXPIRY_SLACK_S)
        if hinted is not None:
            wait = max(wait, min(hinted, s.lease_duration_s))
        if self.is_leader and self._last_renew is not None:
            # never sleep past the renew deadline
            wait = min(wait, max(self._last_renew + s.renew_deadline_s - now, 0.0))
        return wait

    def _stop_leading(self, why: str) -> None:
        if self.is_leader:
            self._leading.clear()
            self._log.warning("stopped leading", reason=why)
            if self._on_stopped:
                self._on_stopped()

    def start(self) -> asyncio.Task[None]:
        """Run the loop as a task (once); :meth:`stop` ends it."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self.run())
        return self._task

    async def stop(self) -> None:
        """Cancel the loop and wait for it (it releases the Lease when so configured)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> LeaderElector:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
