"""The settings, as frozen dataclasses with a comment per field; :mod:`image_updater.config` reads them.

Every key of ``config.example.yaml`` is a field here; the YAML reader and the environment overrides
live in :mod:`image_updater.config`, which re-exports these names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ApplicationsSettings:
    """Where Applications come from and which of them are processed."""

    #: ``files`` (manifests in a folder or a Git path) or ``kubernetes``
    source: str = "files"
    #: files: a folder, or ``<git URL>#<path>``
    path: str = "./applications"
    #: kubernetes: namespaces to watch; empty means all
    namespaces: tuple[str, ...] = ()
    #: globs on the Application name; empty means all
    match_names: tuple[str, ...] = ()
    #: a label selector such as ``team=web,tier!=db``
    match_labels: str = ""


@dataclass(frozen=True)
class RegistrySettings:
    """One entry of AIU's ``registries.conf`` (every key of that file is accepted as it is)."""

    #: shown in logs and errors
    name: str = ""
    #: images whose name starts with this (host, or host/path) use this entry; the longest prefix wins
    prefix: str = ""
    #: the registry API root; default ``https://<prefix host>``
    api_url: str = ""
    #: ``env:VAR``, ``file:/path``, ``ext:/path``, ``secret:ns/name#field``, ``pullsecret:ns/name`` or
    #: ``dockerconfig:/path/config.json``
    credentials: str | None = None
    #: seconds after which the credentials are read again; ``None``: never
    credsexpire: float | None = None
    #: namespace put before single-component names on this registry (Docker Hub always uses ``library``)
    defaultns: str = ""
    #: the registry of image names that name none (instead of Docker Hub); at most one entry
    default: bool = False
    #: skip TLS certificate verification
    insecure: bool = False
    #: requests per second; 0 for no limit
    limit: float = 0.0
    #: AIU's ``ping``: ``False`` skips the up-front ``GET /v2/`` (auth is then set up by the first request)
    ping: bool = True
    #: AIU's ``tagsortmode``: ``latest-first`` or ``latest-last`` when the registry lists tags by push
    #: time, which ``newest-build`` then uses instead of fetching metadata; ``none`` (default) otherwise
    tagsortmode: str = "none"
    #: a PEM CA bundle to trust for this registry, besides the system's
    ca_file: str = ""
    #: PEM CA certificates, inline
    ca_data: str = ""


TAG_SORT_MODES = ("none", "latest-first", "latest-last")


@dataclass(frozen=True)
class GitCredential:
    """Credentials for Git remotes whose URL starts with ``url`` (the longest prefix wins).

    Values are ``env:NAME``/``file:/path`` references or the text itself; ``literal`` credentials (read
    from a Secret) are used as they are, never resolved.
    """

    url: str
    #: HTTPS user name
    username: str | None = None
    #: HTTPS password or access token
    password: str | None = None
    #: SSH private key (OpenSSH or PEM text)
    ssh_key: str | None = None
    #: ``known_hosts`` lines the SSH server's host key must be in; without them, the system's files
    known_hosts: str | None = None
    literal: bool = False


@dataclass(frozen=True)
class GitSettings:
    """Git write-back: commit identity, message, signing, remote credentials, the clone cache."""

    #: author and committer of our commits
    user: str = "image-updater"
    email: str = "image-updater@example.com"
    #: template; variables app_name, changes (``- image: old -> new`` lines), change_count, and AIU's
    #: ``{{ .AppName }}`` and ``{{ range .AppChanges }}{{ .Image }} {{ .OldTag }} {{ .NewTag }}{{ end }}``
    commit_message: str = "build: update images of {{ app_name }}\n\n{{ changes }}\n"
    credentials: tuple[GitCredential, ...] = ()
    #: where clones are cached between cycles
    cache_dir: str = ""
    #: how many times a rejected push is retried on the new tip
    push_retries: int = 5
    #: sign commits: a GnuPG key id (``openpgp``), or an SSH private key (``ssh``: a path, or ``env:``/
    #: ``file:`` holding the key); empty: unsigned
    signing_key: str = ""
    #: ``openpgp`` or ``ssh``
    signing_method: str = "openpgp"
    #: add a ``Signed-off-by`` trailer
    sign_off: bool = False
    #: the namespace Argo CD runs in: an Application elsewhere writes ``.argocd-source-<ns>_<app>.yaml``
    argocd_namespace: str = "argocd"

    def credential_for(self, url: str) -> GitCredential | None:
        """The entry with the longest URL prefix matching ``url``."""
        matches = [c for c in self.credentials if url.startswith(c.url)]
        return max(matches, key=lambda c: len(c.url)) if matches else None


DEFAULT_WEBHOOK_COALESCE_S = 0.3
DEFAULT_WEBHOOK_MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class WebhookSettings:
    """The registry webhook listener."""

    #: the port of ``POST /webhook``; 0: not served
    port: int = 8082
    #: per source (``distribution``, ``docker.io``, ...), the secret its requests must carry
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: seconds pushes are collected before their update runs (a burst becomes one cycle)
    coalesce: float = DEFAULT_WEBHOOK_COALESCE_S
    #: larger request bodies are refused with 413
    max_body_bytes: int = DEFAULT_WEBHOOK_MAX_BODY_BYTES


@dataclass(frozen=True)
class KubernetesSettings:
    """How the Kubernetes API is reached (the ``kubernetes`` source, Secrets, the argocd write-back,
    Events, the leader Lease)."""

    #: a kubeconfig file; empty: the in-cluster service account, else ``$KUBECONFIG``, else ``~/.kube/config``
    kubeconfig: str = ""
    #: a context of that kubeconfig; empty: its current context
    context: str = ""


@dataclass(frozen=True)
class LeaderElectionSettings:
    """One leader among replicas through a ``coordination.k8s.io`` Lease (the service with the
    ``kubernetes`` source); only the leader runs cycles."""

    enabled: bool = True
    #: the Lease's name (``manifests/rbac.yaml`` grants ``get``/``update`` on this name only)
    lease_name: str = "image-updater-leader"
    #: the Lease's namespace; empty: the namespace this pod runs in (``$POD_NAMESPACE``, else the service
    #: account's), else ``argocd``
    namespace: str = ""
    #: a Lease not renewed for this long may be taken over (whole seconds)
    lease_duration: float = 15.0
    #: a leader that could not renew for this long stops writing (before anyone may take over)
    renew_deadline: float = 10.0
    #: how often the leader renews, and a follower tries to acquire
    renew_interval: float = 2.0


@dataclass(frozen=True)
class LogSettings:
    """Log format (``auto``: console on a terminal, JSON otherwise) and level."""

    format: str = "auto"
    level: str = "info"


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, validated."""

    applications: ApplicationsSettings = field(default_factory=ApplicationsSettings)
    interval: float = 120.0
    max_concurrency: int = 10
    registries: tuple[RegistrySettings, ...] = ()
    git: GitSettings = field(default_factory=GitSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    health_port: int = 8080
    #: the address the health and webhook ports bind
    listen_address: str = "0.0.0.0"
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    leader_election: LeaderElectionSettings = field(default_factory=LeaderElectionSettings)
    log: LogSettings = field(default_factory=LogSettings)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some top-level fields changed."""
        return dataclasses.replace(self, **changes)
