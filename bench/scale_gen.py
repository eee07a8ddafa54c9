"""The scale benchmark's workload: N repositories x K tags in the real registry, A Applications in Git.

Registry. Every repository ``bench/svc-NNN`` gets K tags: 80 % semver (``S.M.P``, 20 patches a minor, the
series ``S`` one of four by repository)
and 20 % build numbers (``build-NNNN``). Tags carry ``created`` dates from ``dates`` distinct values
(a config blob per date, shared by every repository through a cross-repository mount), so only one
manifest ``PUT`` per tag is pushed; every ``multiarch_every``-th repository has its newest semver tags
as OCI indexes (linux/amd64 and linux/arm64).

Git. ``config_repos`` config repositories hold A Applications between them, each in ``apps/<name>``:
a kustomization (``kustomization`` target), Helm values (``helmvalues``) or plain manifests
(``manifests``), with 1 to 4 images from the registry (semver with and without constraints,
alphabetical and numerical over the build tags). The running tags are what the product's own selection
would choose, except for a fraction ``outdated`` of the images, which run an older tag. The
Applications' manifests go to a folder (the ``files`` source): ``main/`` for those, and ``metadata/``
for a few Applications with ``newest-build`` and ``digest`` images (they need manifests and configs).

Image names use the host :data:`HOST`; the config file maps it to the registry or to a proxy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import textwrap
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from image_updater.annotations import parse_application
from image_updater.selection.base import TagInfo
from image_updater.selection.factory import build_selector
from tests.harness.gitserver import GitHttpServer, run_git
from tests.harness.registry import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_INDEX,
    RegistryError,
    RegistryServer,
    rfc3339,
    sha256_digest,
)

HOST = "registry.bench.test"
PREFIX = "argocd-image-updater.argoproj.io/"
BASE_TIME = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
SEED_REPO = "bench/seed"


@dataclass(frozen=True)
class Size:
    """How big the workload is."""

    apps: int
    repos: int
    tags: int
    config_repos: int
    dates: int = 30
    multiarch_every: int = 20
    index_tags: int = 10
    metadata_apps: int = 40


FULL = Size(apps=1000, repos=200, tags=300, config_repos=10)
SMALL = Size(apps=100, repos=20, tags=30, config_repos=2, dates=6, multiarch_every=5, index_tags=3, metadata_apps=8)


MAJORS = 4


def major_of(repo: int) -> int:
    """Repositories use one of :data:`MAJORS` version series, so that not every repository lists the
    same tag texts (which would flatter anything the product remembers by tag text)."""
    return 1 + repo % MAJORS


def tag_names(count: int, major: int = 1) -> list[str]:
    """The tags of a repository, in push order."""
    builds = count // 5
    semver = count - builds
    return [f"{major}.{i // 20}.{i % 20}" for i in range(semver)] + [f"build-{n:04d}" for n in range(1, builds + 1)]


def repo_name(index: int) -> str:
    return f"bench/svc-{index:03d}"


def created_of(size: Size, position: int) -> dt.datetime:
    """The creation date of the tag pushed at ``position`` (``dates`` distinct values in all)."""
    return BASE_TIME + dt.timedelta(hours=position * size.dates // size.tags)


def is_multiarch(size: Size, repo: int) -> bool:
    return repo % size.multiarch_every == 0


@dataclass
class Filled:
    """What the registry holds: tag digests per repository, and what filling it cost."""

    digests: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0


def fill_registry(server: RegistryServer, size: Size, *, workers: int = 16) -> Filled:
    """Push the workload's tags (one manifest PUT per tag; blobs mounted from one seed repository)."""
    pusher = server.pusher
    layer = pusher.layer("bench")
    groups = sorted({created_of(size, i) for i in range(size.tags)})
    configs: dict[tuple[dt.datetime, str], tuple[str, int]] = {}
    pusher.upload_blob(SEED_REPO, layer.gz, layer.digest)
    for created in groups:
        for arch in ("amd64", "arm64"):
            body = json.dumps(
                {
                    "architecture": arch,
                    "os": "linux",
                    "created": rfc3339(created),
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
                },
                separators=(",", ":"),
                sort_keys=True,
            ).encode()
            configs[(created, arch)] = (pusher.upload_blob(SEED_REPO, body, check=False), len(body))

    def manifest(created: dt.datetime, arch: str) -> bytes:
        digest, length = configs[(created, arch)]
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "size": length, "digest": digest},
                "layers": [{"mediaType": DOCKER_LAYER, "size": len(layer.gz), "digest": layer.digest}],
            },
            indent=3,
        ).encode()

    bodies = {key: manifest(*key) for key in configs}

    def index(created: dt.datetime) -> bytes:
        entries = [
            {
                "mediaType": DOCKER_MANIFEST,
                "size": len(bodies[(created, arch)]),
                "digest": sha256_digest(bodies[(created, arch)]),
                "platform": {"architecture": arch, "os": "linux"},
            }
            for arch in ("amd64", "arm64")
        ]
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=3).encode()

    filled = Filled()
    count = [0]

    def put(repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest, again after a moment when the registry read a blob another thread was
        rewriting (identical manifests are pushed to many repositories at once)."""
        for attempt in range(5):
            try:
                return pusher.put_manifest(repo, reference, body, media_type)
            except RegistryError:
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def mount(repo: str, digest: str) -> None:
        url = f"/v2/{repo}/blobs/uploads/?mount={digest}&from={SEED_REPO}"
        response = pusher.request("POST", url, repo)
        if response.status_code != 201:
            raise RuntimeError(f"mounting {digest} into {repo}: HTTP {response.status_code} {response.text[:200]}")

    def setup(repo_index: int) -> list[tuple[str, str, bytes, str]]:
        """Mount the blobs into one repository; return its manifest pushes (children before indexes)."""
        repo = repo_name(repo_index)
        multi = is_multiarch(size, repo_index)
        names = tag_names(size.tags, major_of(repo_index))
        mount(repo, layer.digest)
        for (_, arch), (digest, _) in configs.items():
            if arch == "amd64" or multi:
                mount(repo, digest)
        count[0] += 1 + len(groups) * (2 if multi else 1)
        semver = [n for n in names if not n.startswith("build-")]
        indexed = set(semver[-size.index_tags :]) if multi else set()
        pushes = []
        children: set[tuple[dt.datetime, str]] = set()
        for position, tag in enumerate(names):
            created = created_of(size, position)
            if tag in indexed:
                for arch in ("amd64", "arm64"):
                    if (created, arch) not in children:
                        children.add((created, arch))
                        body = bodies[(created, arch)]
                        pushes.append((repo, sha256_digest(body), body, DOCKER_MANIFEST))
                pushes.append((repo, tag, index(created), OCI_INDEX))
            else:
                pushes.append((repo, tag, bodies[(created, "amd64")], DOCKER_MANIFEST))
        return pushes

    started = dt.datetime.now()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        per_repo = list(pool.map(setup, range(size.repos)))
        children = [p for pushes in per_repo for p in pushes if p[3] == DOCKER_MANIFEST and p[1].startswith("sha256:")]
        tagged = [p for pushes in per_repo for p in pushes if not p[1].startswith("sha256:")]
        list(pool.map(lambda p: put(*p), children))
        results = pool.map(lambda p: (p[0], p[1], put(*p)), tagged, chunksize=64)
        for repo, tag, digest in results:
            filled.digests.setdefault(repo, {})[tag] = digest
    filled.seconds = (dt.datetime.now() - started).total_seconds()
    filled.requests = count[0] + len(children) + len(tagged)
    return filled


# -- Applications and config repositories -----------------------------------------------------------


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
