"""CPU of choosing tags at scale, without the network: the selections a 1,000-Application cycle makes.

Builds the listings :mod:`bench.scale_gen` puts in the registry (N repositories x K tags: 80 % semver
in one version series per repository, 20 % ``build-NNNN``) and the images :mod:`bench.scale_apps` tracks
(semver with and without constraints, alphabetical and numerical with ``allow-tags``/``tag-extract``),
then selects a tag for every distinct (repository, settings) pair the way a cycle does: every image of a
repository from one shared :class:`~image_updater.selection.base.Listing`. Prints the median CPU time of
``--runs`` runs, each in a fresh subprocess (nothing remembered from an earlier run: the parse caches
start cold, as in ``run --once``).

    .venv/bin/python bench/selection_cpu.py [--repos 200] [--tags 300] [--images 2500] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale_gen import major_of, tag_names
from image_updater.model.ref import parse_image_name
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import Listing, TagInfo
from image_updater.selection.factory import build_selector


def _settings(rng: random.Random, major: int) -> dict[str, object]:
    """One image's settings, in the proportions of bench/scale_apps.py."""
    roll = rng.random()
    if roll < 0.35:
        return {}
    if roll < 0.65:
        return {"constraint": f"~{major}.{rng.randrange(15)}"}
    if roll < 0.8:
        return {"constraint": f"{major}.{rng.randrange(15)}.x"}
    if roll < 0.9:
        return {"strategy": "alphabetical", "allow_tags": r"regexp:^build-\d+$"}
    return {"strategy": "numerical", "allow_tags": r"regexp:^build-(?P<n>\d+)$", "tag_extract": "$n"}


def one_run(repos: int, tags: int, images: int) -> dict[str, float]:
    rng = random.Random(7)
    listings = [[TagInfo(t) for t in tag_names(tags, major_of(r))] for r in range(repos)]
    wanted: dict[tuple[int, tuple[tuple[str, object], ...]], ImageSpec] = {}
    for _ in range(images):
        repo = rng.randrange(repos)
        settings = _settings(rng, major_of(repo))
        name = parse_image_name(f"registry.example/bench/repo-{repo:03d}")
        wanted[(repo, tuple(sorted(settings.items())))] = ImageSpec(name=name, written_name=str(name), **settings)  # type: ignore[arg-type]
    shared = [Listing(infos) for infos in listings]
    started, cpu = time.perf_counter(), time.process_time()
    chosen = 0
    for (repo, _), image in wanted.items():
        selection = build_selector(image).select(shared[repo])
        chosen += selection.selected is not None
    return {
        "cpu_ms": (time.process_time() - cpu) * 1000,
        "wall_ms": (time.perf_counter() - started) * 1000,
        "selections": len(wanted),
        "chosen": chosen,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--images", type=int, default=2500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.repos, args.tags, args.images)))
        return 0
    results = []
    for _ in range(args.runs):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--repos",
                str(args.repos),
                "--tags",
                str(args.tags),
                "--images",
                str(args.images),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out))
    cpu = statistics.median(r["cpu_ms"] for r in results)
    first = results[0]
    print(
        f"{first['selections']} distinct selections ({args.images} images, {args.repos} repositories x "
        f"{args.tags} tags), {first['chosen']} with a tag chosen: median CPU {cpu:.0f} ms of {args.runs} runs "
        f"({cpu * 1000 / first['selections']:.0f} us a selection); runs: "
        + ", ".join(f"{r['cpu_ms']:.0f}" for r in results)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
