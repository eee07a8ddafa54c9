"""The scale benchmark's registry: N repositories x K tags, filled over the registry API.

Every repository ``bench/svc-NNN`` gets K tags: 80 % semver (``S.M.P``, 20 patches a minor, the series
``S`` one of four by repository) and 20 % build numbers (``build-NNNN``). Tags carry ``created`` dates
from ``dates`` distinct values (a config blob per date, shared by every repository through a
cross-repository mount), so only one manifest ``PUT`` per tag is pushed; every ``multiarch_every``-th
repository has its newest semver tags as OCI indexes (linux/amd64 and linux/arm64). The Applications
that use them are made by :mod:`bench.scale_apps`.

Image names use the host :data:`HOST`; the config file maps it to the registry or to a proxy.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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
