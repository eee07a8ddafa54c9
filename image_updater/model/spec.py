"""Applications and the images they track, parsed from annotations into frozen value types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from image_updater.model.ref import ImageName


class TargetKind(StrEnum):
    """Which file a Git write-back edits."""

    ARGOCD_SOURCE = "argocd-source"
    KUSTOMIZATION = "kustomization"
    HELMVALUES = "helmvalues"
    MANIFESTS = "manifests"


class WriteBackMethod(StrEnum):
    """How an update reaches the cluster: a Git commit, or a patch of the Application itself."""

    GIT = "git"
    ARGOCD = "argocd"


@dataclass(frozen=True)
class ImageSpec:
    """One entry of ``image-list`` with its per-image settings.

    ``written_name`` is the name as the user wrote it in ``image-list`` (``nginx``), ``name`` its
    normalised form (``docker.io/library/nginx``); ``label`` is what logs and commit messages show.
    """

    name: ImageName
    written_name: str
    alias: str | None = None
    constraint: str | None = None
    strategy: str = "semver"
    allow_tags: str | None = None
    ignore_tags: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    force_update: bool = False
    pull_secret: str | None = None
    tag_extract: str | None = None
    kustomize_image_name: str | None = None
    helm_image_name: str | None = None
    helm_image_tag: str | None = None
    helm_image_spec: str | None = None

    @property
    def label(self) -> str:
        """The name shown to people: the image as written in ``image-list``."""
        return self.written_name


@dataclass(frozen=True)
class WriteBack:
    """Where and how an Application's updates are written.

    ``target_path`` is the annotation's path as written (``None`` for the default); a leading ``/``
    means the repository root, anything else is relative to the Application's source path, as in AIU.
    ``checkout_branch`` is the branch read; ``push_branch`` the one written (they differ for
    ``git-branch: base:target``); ``None`` means the Application's ``targetRevision``.
    """

    method: WriteBackMethod = WriteBackMethod.ARGOCD
    git_credentials: str | None = None
    target: TargetKind = TargetKind.ARGOCD_SOURCE
    target_path: str | None = None
    checkout_branch: str | None = None
    push_branch: str | None = None
    repository: str | None = None


@dataclass(frozen=True)
class AppSource:
    """The Application's ``spec.source``: the config repository, revision and path."""

    repo_url: str
    target_revision: str = "HEAD"
    path: str = "."
    source_type: str | None = None


@dataclass(frozen=True)
class HelmParameter:
    """One entry of ``spec.source.helm.parameters``."""

    name: str
    value: str


@dataclass(frozen=True)
class LiveState:
    """What the Application object itself says about its images: the overrides in its spec (what the
    ``argocd`` write-back changes) and, from Argo CD, the images it runs (``status.summary.images``)."""

    #: ``spec.source.kustomize.images`` entries as written (``name:tag``, ``name=new:tag``)
    kustomize_images: tuple[str, ...] = ()
    helm_parameters: tuple[HelmParameter, ...] = ()
    #: ``status.summary.images``: image references with their tags (``nginx:1.25.3``)
    summary_images: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppSpec:
    """An annotated Application, ready for the cycle."""

    name: str
    namespace: str
    source: AppSource
    images: tuple[ImageSpec, ...]
    write_back: WriteBack
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    origin: str = ""
    #: ``metadata.uid`` (Events name the object by it), when the manifest has one
    uid: str | None = field(default=None, compare=False)
    live: LiveState = field(default_factory=LiveState, compare=False)

    @property
    def key(self) -> str:
        """``namespace/name``, unique among Applications."""
        return f"{self.namespace}/{self.name}"
