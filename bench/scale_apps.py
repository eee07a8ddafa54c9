"""The scale benchmark's Applications: A of them in config repositories on the real Git server.

``config_repos`` config repositories hold A Applications between them, each in ``apps/<name>``: a
kustomization (``kustomization`` target), Helm values (``helmvalues``) or plain manifests
(``manifests``), with 1 to 4 images from the registry of :mod:`bench.scale_gen` (semver with and
without constraints, alphabetical and numerical over the build tags). The running tags are what the
product's own selection would choose, except for a fraction ``outdated`` of the images, which run an
older tag. The Applications' manifests go to a folder (the ``files`` source): ``main/`` for those, and
``metadata/`` for a few Applications with ``newest-build`` and ``digest`` images (they need manifests
and configs).
"""

from __future__ import annotations

import hashlib
import json
import random
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scale_gen import HOST, Filled, Size, created_of, is_multiarch, major_of, repo_name, tag_names
from image_updater.annotations import parse_application
from image_updater.selection.base import TagInfo
from image_updater.selection.factory import build_selector
from tests.harness.gitserver import GitHttpServer, run_git

PREFIX = "argocd-image-updater.argoproj.io/"


@dataclass
class Image:
    """One image of one Application."""

    alias: str
    repo: str
    constraint: str | None
    annotations: dict[str, str]
    current: str = ""
    best: str = ""

    @property
    def ref(self) -> str:
        return f"{HOST}/{self.repo}"

    @property
    def outdated(self) -> bool:
        return self.current != self.best


@dataclass
class App:
    """One Application and the target it writes."""

    name: str
    config_repo: str
    target: str
    images: list[Image]

    @property
    def path(self) -> str:
        return f"apps/{self.name}"


@dataclass
class Workload:
    """Where the Applications are, and what a first cycle is expected to do."""

    main_dir: Path
    metadata_dir: Path
    config_repos: dict[str, str]
    apps: list[App]
    metadata: list[App]

    def expected_updates(self, apps: Sequence[App]) -> int:
        return sum(1 for app in apps for image in app.images if image.outdated)

    def reset(self, server: GitHttpServer) -> None:
        """Put every config repository back at its first commit (the server's side, not a push)."""
        for name, commit in self.config_repos.items():
            run_git(["update-ref", "refs/heads/main", commit], git_dir=server.bare_path(name))


def _main_image(rng: random.Random, alias: str, repo: str, minors: int, major: int) -> Image:
    roll = rng.random()
    notes: dict[str, str] = {}
    constraint = None
    if roll < 0.35:
        pass
    elif roll < 0.65:
        constraint = f"~{major}.{rng.randrange(minors)}"
    elif roll < 0.8:
        constraint = f"{major}.{rng.randrange(minors)}.x"
    elif roll < 0.9:
        notes = {"update-strategy": "alphabetical", "allow-tags": r"regexp:^build-\d+$"}
    else:
        notes = {
            "update-strategy": "numerical",
            "allow-tags": r"regexp:^build-(?P<n>\d+)$",
            "tag-extract": "$n",
        }
    return Image(alias, repo, constraint, notes)


def _metadata_image(rng: random.Random, alias: str, repo: str, multi: bool, newest_semver: str) -> Image:
    if rng.random() < 0.7:
        notes = {"update-strategy": "newest-build", "allow-tags": r"regexp:^\d+\.\d+\.\d+$"}
        if multi:
            notes["platforms"] = "linux/amd64,linux/arm64"
        return Image(alias, repo, None, notes)
    return Image(alias, repo, newest_semver, {"update-strategy": "digest"})


def application_manifest(app: App, repo_url: str) -> str:
    """The Argo CD Application (files source) of ``app``."""
    listed = ", ".join(f"{i.alias}={i.ref}" + (f":{i.constraint}" if i.constraint else "") for i in app.images)
    notes = {"image-list": listed, "write-back-method": "git", "write-back-target": app.target}
    for image in app.images:
        notes.update({f"{image.alias}.{k}": v for k, v in image.annotations.items()})
        if app.target == "helmvalues":
            notes[f"{image.alias}.helm.image-name"] = f"{image.alias}.image.repository"
            notes[f"{image.alias}.helm.image-tag"] = f"{image.alias}.image.tag"
    lines = "\n".join(f"    {PREFIX}{k}: {json.dumps(v)}" for k, v in notes.items())
    return (
        f"apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app.name}\n"
        f"  namespace: argocd\n  labels:\n    team: team-{int(app.name[-4:]) % 7}\n  annotations:\n{lines}\n"
        f"spec:\n  project: default\n  source:\n    repoURL: {repo_url}\n    targetRevision: main\n"
        f"    path: {app.path}\n  destination:\n    server: https://kubernetes.default.svc\n"
        f"    namespace: {app.name}\n  syncPolicy:\n    automated: {{prune: true, selfHeal: true}}\n"
    )


def _deployment(app: App, *, tagged: bool) -> str:
    containers = "".join(
        textwrap.dedent(
            f"""\
                    - name: {image.alias}
                      image: {image.ref}{":" + image.current if tagged else ""}
                      ports:
                        - containerPort: {8080 + n}
                      env:
                        - name: LOG_LEVEL
                          value: info
                      resources:
                        requests: {{cpu: 100m, memory: 128Mi}}
            """
        )
        for n, image in enumerate(app.images)
    )
    return (
        f"# {app.name}: generated by bench/scale_gen.py\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        f"  name: {app.name}\n  labels: {{app: {app.name}}}\nspec:\n  replicas: 2\n  selector:\n"
        f"    matchLabels: {{app: {app.name}}}\n  template:\n    metadata:\n      labels: {{app: {app.name}}}\n"
        f"    spec:\n      containers:\n" + textwrap.indent(containers, "        ")
    )


def _service(app: App) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {app.name}\nspec:\n  selector: {{app: {app.name}}}\n"
        "  ports:\n    - port: 80\n      targetPort: 8080\n"
    )


def _kustomize_entry(image: Image) -> str:
    tag, _, digest = image.current.partition("@")
    return f"  - name: {image.ref}\n    newTag: {tag}  # tracked\n" + (f"    digest: {digest}\n" if digest else "")


def app_files(app: App) -> dict[str, str]:
    """The files of ``app`` in its config repository."""
    base = app.path
    files = {f"{base}/service.yaml": _service(app)}
    if app.target == "kustomization":
        entries = "".join(_kustomize_entry(i) for i in app.images)
        files[f"{base}/deployment.yaml"] = _deployment(app, tagged=False)
        files[f"{base}/kustomization.yaml"] = (
            "# overlay: production\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"namespace: {app.name}\nresources:\n  - deployment.yaml\n  - service.yaml\n"
            "commonLabels:\n  tier: backend\nimages:\n" + entries
        )
    elif app.target == "helmvalues":
        blocks = "".join(
            f"{i.alias}:\n  image:\n    repository: {i.ref}\n    tag: {json.dumps(i.current)}\n"
            f"    pullPolicy: IfNotPresent\n  resources:\n    requests: {{cpu: 100m, memory: 128Mi}}\n"
            for i in app.images
        )
        files[f"{base}/Chart.yaml"] = f"apiVersion: v2\nname: {app.name}\nversion: 0.1.0\n"
        files[f"{base}/values.yaml"] = f"# values of {app.name}\nreplicaCount: 2\n" + blocks
    else:
        files[f"{base}/deployment.yaml"] = _deployment(app, tagged=True)
    return files


def _settle(images: list[Image], tags: dict[str, list[TagInfo]], rng: random.Random, outdated: float) -> None:
    """Set each image's best tag (the product's own choice) and its running tag."""
    for image in images:
        notes = {f"{PREFIX}{image.alias}.{k}": v for k, v in image.annotations.items()}
        listed = f"{image.alias}={image.ref}" + (f":{image.constraint}" if image.constraint else "")
        manifest: dict[str, Any] = {
            "metadata": {"name": "probe", "annotations": {f"{PREFIX}image-list": listed, **notes}},
            "spec": {"source": {"repoURL": "http://x/x.git", "path": "x"}},
        }
        spec = parse_application(manifest).images[0]
        selection = build_selector(spec).select(tags[image.repo])
        assert selection.selected is not None, (image, selection.reason)
        image.best = selection.selected
        candidates = [t for t in selection.considered if t != image.best]
        if spec.strategy == "digest":
            stale = "sha256:" + hashlib.sha256(image.repo.encode()).hexdigest()
            image.current = f"{image.constraint}@{stale}" if rng.random() < outdated else image.best
        elif candidates and rng.random() < outdated:
            image.current = candidates[-1 - rng.randrange(min(3, len(candidates)))]
        else:
            image.current = image.best


def build_workload(
    server: GitHttpServer, size: Size, filled: Filled, folder: Path, *, outdated: float, seed: int = 6
) -> Workload:
    """Create the config repositories and write the Applications' manifests under ``folder``."""
    rng = random.Random(seed)
    minors = (size.tags - size.tags // 5 + 19) // 20
    plain = {repo_name(r): [TagInfo(t) for t in tag_names(size.tags, major_of(r))] for r in range(size.repos)}
    dated: dict[str, list[TagInfo]] = {}
    for r in range(size.repos):
        repo = repo_name(r)
        digests = filled.digests.get(repo, {})
        names = tag_names(size.tags, major_of(r))
        dated[repo] = [TagInfo(t, digest=digests.get(t), created=created_of(size, i)) for i, t in enumerate(names)]
    targets = ["kustomization"] * 4 + ["helmvalues"] * 3 + ["manifests"] * 3
    apps: list[App] = []
    for a in range(size.apps):
        repos = [(a * 7 + k * 31) % size.repos for k in range(1 + (a % 4))]
        images = [_main_image(rng, f"img{k}", repo_name(r), minors, major_of(r)) for k, r in enumerate(repos)]
        _settle(images, plain, rng, outdated)
        apps.append(App(f"app-{a:04d}", f"config-{a % size.config_repos:02d}", targets[a % 10], images))
    metadata: list[App] = []
    for m in range(size.metadata_apps):
        repo_index = (m * size.multiarch_every // 2) % size.repos
        newest = [t for t in tag_names(size.tags, major_of(repo_index)) if not t.startswith("build-")][-1]
        image = _metadata_image(rng, "img0", repo_name(repo_index), is_multiarch(size, repo_index), newest)
        _settle([image], dated, rng, 1.0 if outdated > 0 else 0.0)
        metadata.append(App(f"meta-{m:04d}", "config-meta", "kustomization", [image]))
    main_dir, metadata_dir = folder / "main", folder / "metadata"
    main_dir.mkdir(parents=True, exist_ok=True)
    metadata_dir.mkdir(parents=True, exist_ok=True)
    commits: dict[str, str] = {}
    for repo in sorted({app.config_repo for app in apps + metadata}):
        members = [app for app in apps + metadata if app.config_repo == repo]
        files: dict[str, str] = {"README.md": f"# {repo}\n"}
        for app in members:
            files.update(app_files(app))
        url = server.create_repo(repo, files)
        commits[repo] = server.rev_parse(repo) or ""
        for app in members:
            where = metadata_dir if app in metadata else main_dir
            (where / f"{app.name}.yaml").write_text(application_manifest(app, url))
    return Workload(main_dir, metadata_dir, commits, apps, metadata)


def write_config(
    path: Path,
    *,
    applications: Path,
    api_url: str,
    git: GitHttpServer,
    cache_dir: Path,
    limit: float = 0,
    health_port: int = 0,
    webhook_port: int = 0,
    extra_registries: Sequence[dict[str, str]] = (),
) -> Path:
    """The service's config file: the bench host mapped to ``api_url``; Git credentials from the env."""
    registries = [{"name": "bench", "prefix": HOST, "api_url": api_url, "limit": str(limit)}, *extra_registries]
    listed = "".join("  - " + "\n    ".join(f"{k}: {v}" for k, v in entry.items()) + "\n" for entry in registries)
    path.write_text(
        f"applications:\n  path: {applications}\nmax_concurrency: 10\nregistries:\n{listed}"
        f"git:\n  user: image-updater\n  email: bot@example.com\n  cache_dir: {cache_dir}\n  credentials:\n"
        f"    - url: {git.url}/\n      username: {git.username}\n      password: env:BENCH_GIT_PASSWORD\n"
        f"webhook:\n  port: {webhook_port}\nhealth_port: {health_port}\nlog:\n  format: json\n  level: info\n"
    )
    return path
