"""What one process talks to, built from the settings: the Applications source, the registries, and
the Kubernetes API when the ``kubernetes`` source is used.

- ``applications.source: files``: a folder (:class:`FolderSource`), or ``<git URL>#<path>``
  (:class:`GitFolderSource`, through the same clone cache as the write-back).
- ``applications.source: kubernetes``: one lightkube client for the process (:class:`Cluster`), shared
  by the source, the credentials in Secrets (registry ``pullsecret:``/``secret:`` and Git
  ``git:secret:``), the ``argocd`` write-back, Events and the leader Lease; closed at exit.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from lightkube import AsyncClient

from image_updater.adapters.files import Discovery, GitLocation, discover_files, discover_git, git_location
from image_updater.adapters.git.workspace import default_cache_dir
from image_updater.adapters.k8s.argocd import ArgoCDWriter
from image_updater.adapters.k8s.client import SERVICE_ACCOUNT_DIR, build_client
from image_updater.adapters.k8s.events import EventRecorder
from image_updater.adapters.k8s.lease import LeaseSettings, default_identity
from image_updater.adapters.k8s.secrets import SecretCredentials
from image_updater.adapters.k8s.source import KubernetesSource
from image_updater.adapters.registry.pool import RegistryPool
from image_updater.adapters.registry.transport import RequestCounter
from image_updater.appfilter import AppFilter, build_filter
from image_updater.config import GitSettings, LeaderElectionSettings, RegistrySettings, Settings
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import TagInfo
from image_updater.service.argocd_writeback import ClusterDeps
from image_updater.service.cycle import CycleDeps, TagSource

#: the Lease's namespace when neither the settings nor the pod name one (Argo CD's, as in manifests/)
DEFAULT_LEASE_NAMESPACE = "argocd"


class ApplicationSource(Protocol):
    """Where the Applications of a cycle come from."""

    async def discover(self) -> Discovery:
        """The annotated Applications to process, and what could not be read."""
        ...


@dataclass(frozen=True)
class FolderSource:
    """Application manifests in a local folder."""

    path: str
    app_filter: AppFilter

    async def discover(self) -> Discovery:
        """Read the folder (in a worker thread)."""
        return await asyncio.to_thread(discover_files, self.path, self.app_filter)


@dataclass(frozen=True)
class GitFolderSource:
    """Application manifests in a folder of a Git repository, fetched into the clone cache each cycle."""

    location: GitLocation
    cache_dir: Path
    app_filter: AppFilter
    git: GitSettings

    async def discover(self) -> Discovery:
        """Fetch and read the folder (in a worker thread)."""
        credential = self.git.credential_for(self.location.url)
        return await asyncio.to_thread(
            discover_git, self.location, self.cache_dir, self.app_filter, credential=credential
        )


@dataclass
class Cluster:
    """The Kubernetes side of one process, over one lightkube client."""

    client: AsyncClient
    source: KubernetesSource
    credentials: SecretCredentials
    writer: ArgoCDWriter
    events: EventRecorder

    def cycle_deps(self) -> ClusterDeps:
        """What a cycle uses of the cluster."""
        return ClusterDeps(writer=self.writer, reader=self.source, events=self.events)

    async def aclose(self) -> None:
        """Close the client."""
        await self.client.close()


def open_cluster(settings: Settings, *, instance: str | None = None, log: Any = None) -> Cluster:
    """The client for ``settings.kubernetes`` (in-cluster, then ``$KUBECONFIG``, ``~/.kube/config``) and
    everything built on it; ``instance`` names this replica in Events. Raises :class:`ConfigError`
    when no configuration can be loaded."""
    kube = settings.kubernetes
    client = build_client(kube.kubeconfig or None, context=kube.context or None)
    return Cluster(
        client=client,
        source=KubernetesSource.from_settings(client, settings.applications),
        credentials=SecretCredentials(client),
        writer=ArgoCDWriter(client, log=log),
        events=EventRecorder(client, instance=instance),
    )


def cache_dir(settings: Settings) -> Path:
    """Where Git clones are cached."""
    return Path(settings.git.cache_dir) if settings.git.cache_dir else default_cache_dir()


def build_source(settings: Settings, cluster: Cluster | None) -> ApplicationSource:
    """The source ``applications`` names; the ``kubernetes`` source needs ``cluster``."""
    apps = settings.applications
    if apps.source == "kubernetes":
        assert cluster is not None, "the kubernetes source needs a cluster"
        return cluster.source
    app_filter = build_filter(apps.match_names, apps.match_labels)
    location = git_location(apps.path)
    if location is not None:
        return GitFolderSource(location, cache_dir(settings), app_filter, settings.git)
    return FolderSource(apps.path, app_filter)


def lease_settings(
    settings: LeaderElectionSettings,
    *,
    environ: Mapping[str, str] | None = None,
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
) -> LeaseSettings:
    """The Lease of ``settings``: its namespace defaults to this pod's (``$POD_NAMESPACE``, else the
    service account's), else ``argocd``; the identity is ``$POD_NAME`` (else the host name) with a
    random suffix, unique even across restarts."""
    env = os.environ if environ is None else environ
    namespace = settings.namespace or env.get("POD_NAMESPACE", "").strip()
    account_namespace = Path(service_account_dir, "namespace")
    if not namespace and account_namespace.is_file():
        namespace = account_namespace.read_text().strip()
    pod = env.get("POD_NAME", "").strip()
    return LeaseSettings(
        name=settings.lease_name,
        namespace=namespace or DEFAULT_LEASE_NAMESPACE,
        identity=f"{pod}_{uuid.uuid4().hex[:8]}" if pod else default_identity(),
        lease_duration_s=int(settings.lease_duration),
        renew_deadline_s=settings.renew_deadline,
        renew_interval_s=settings.renew_interval,
        retry_interval_s=settings.renew_interval,
    )


class RegistryTags:
    """The cycle's tag source for the service: one :class:`RegistryPool` per registry host.

    The pools live as long as the service (clients, tokens, the scheme memory and the metadata cache
    are reused between cycles); one pool per host keeps one :class:`RequestCounter` per registry for the
    metrics. ``pool_options`` go to every :class:`RegistryPool` (a credentials provider, ...).
    """

    def __init__(self, registries: Sequence[RegistrySettings], **pool_options: Any) -> None:
        self.registries = tuple(registries)
        self._options = pool_options
        self._pools: dict[str, RegistryPool] = {}

    def _pool(self, image: ImageSpec) -> RegistryPool:
        host = image.name.registry
        if host not in self._pools:
            self._pools[host] = RegistryPool(self.registries, **self._options)
        return self._pools[host]

    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        """Every tag of the image's repository."""
        return await self._pool(image).list_tags(image)

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        """``tags`` with digests and creation dates, from the image's registry."""
        return await self._pool(image).with_metadata(image, tags)

    def counters(self) -> dict[str, RequestCounter]:
        """Requests sent so far, by registry host."""
        return {host: pool.counter for host, pool in self._pools.items()}

    async def aclose(self) -> None:
        """Close every pool."""
        for pool in self._pools.values():
            await pool.aclose()


@dataclass
class Wiring:
    """The source, the registries and (with the ``kubernetes`` source) the cluster of one process."""

    settings: Settings
    source: ApplicationSource
    cluster: Cluster | None = None

    @property
    def registry_credentials(self) -> SecretCredentials | None:
        """Reads ``pullsecret:`` and ``secret:`` registry credentials (the kubernetes source only)."""
        return self.cluster.credentials if self.cluster is not None else None

    def cycle_deps(
        self,
        tags: TagSource,
        *,
        dry_run: bool,
        log: structlog.typing.FilteringBoundLogger,
        may_write: Callable[[], bool] = lambda: True,
    ) -> CycleDeps:
        """The dependencies of a cycle over ``tags``."""
        cluster = self.cluster
        return CycleDeps(
            tags=tags,
            git=self.settings.git,
            cache_dir=cache_dir(self.settings),
            max_concurrency=self.settings.max_concurrency,
            dry_run=dry_run,
            git_credentials=cluster.credentials if cluster is not None else None,
            cluster=cluster.cycle_deps() if cluster is not None else None,
            may_write=may_write,
            log=log,
        )

    async def aclose(self) -> None:
        """Close the Kubernetes client, if any."""
        if self.cluster is not None:
            await self.cluster.aclose()


def wire(settings: Settings, *, instance: str | None = None, log: Any = None) -> Wiring:
    """Build the :class:`Wiring` of ``settings``; close it with :meth:`Wiring.aclose`."""
    cluster = None
    if settings.applications.source == "kubernetes":
        cluster = open_cluster(settings, instance=instance, log=log or structlog.get_logger())
    return Wiring(settings=settings, source=build_source(settings, cluster), cluster=cluster)
