"""CPU per tag listing: the product's registry path against a plain concurrent httpx loop.

In one process, against a registry holding ``bench/svc-NNN`` repositories (see ``scale_gen.py``):

    floor    one ``httpx.AsyncClient``, ``--concurrency`` listings in flight, ``Link`` pages followed,
             ``response.json()`` (what ``bench/floor.py`` does)
    client   ``RegistryClient.list_tags`` of the pool's client (the product path without the pool)
    cold     ``product`` with a new pool every round (``run --once``, a service's first cycle)
    product  ``RegistryPool.list_tags`` for the same images, built as the service builds it (an
             anonymous ``registries`` entry whose ``api_url`` is the registry), under a semaphore of
             ``--concurrency`` as the cycle's tag cache holds it

Each keeps its client (pool) between rounds, as the service keeps its pools between cycles; a first,
uncounted round opens the connections (and pings the registry). Rounds alternate between the runners
so drift on a shared machine hits all of them. For each it prints the medians of wall time, main-thread
CPU (``time.thread_time``) and process CPU (``time.process_time``), and the CPU per request.

    .venv/bin/python bench/listing_cpu.py --url http://127.0.0.1:5000 [--repos 200] [--rounds 5]

``PYTHONPATH=<another tree>`` measures that tree's product path (``image_updater`` is printed);
``--before <tree>`` runs the same first with that tree, then with this one, and prints both. A tree
of an earlier commit: ``git archive <commit> image_updater | tar -x -C /tmp/before``.

CPU time on a busy 2-core machine varies by 20 % from run to run. Instructions vary by a few per cent:
run one runner under valgrind with ``--rounds 3`` and ``--rounds 0`` and divide the difference of the
``I refs`` by the listings (600)::

    PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        .venv/bin/python bench/listing_cpu.py --url ... --only product --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: see the docstring

import image_updater
from image_updater.adapters.registry.pool import RegistryPool
from image_updater.config import settings_from_mapping
from image_updater.model.ref import ImageName
from image_updater.model.spec import ImageSpec

_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_PREFIX = "registry.bench.test"


class Floor:
    """The least a cycle could do: list every repository with one plain client."""

    def __init__(self, url: str, repos: list[str], concurrency: int) -> None:
        self.client = httpx.AsyncClient(base_url=url, timeout=30)
        self.repos = repos
        self.concurrency = concurrency
        self.requests = 0

    async def round(self) -> int:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(repo: str) -> int:
            path: str | None = f"/v2/{repo}/tags/list"
            tags = 0
            while path:
                async with limit:
                    response = await self.client.get(path)
                self.requests += 1
                response.raise_for_status()
                tags += len(response.json().get("tags") or [])
                found = _NEXT.search(response.headers.get("link", ""))
                path = found.group(1) if found else None
            return tags

        return sum(await asyncio.gather(*(one(repo) for repo in self.repos)))

    async def aclose(self) -> None:
        await self.client.aclose()


class Client:
    """``RegistryClient.list_tags`` of the pool's client for every repository (the product path without
    the pool's ``TagInfo`` list), ``concurrency`` at a time."""

    def __init__(self, url: str, repos: list[str], concurrency: int) -> None:
        self.product = Product(url, repos, concurrency)
        self.repos = repos
        self.concurrency = concurrency

    @property
    def requests(self) -> int:
        return self.product.requests

    async def round(self) -> int:
        limit = asyncio.Semaphore(self.concurrency)
        client = await self.product.pool.client(self.product.images[0])

        async def one(repo: str) -> int:
            async with limit:
                return len(await client.list_tags(repo))

        tasks = [asyncio.create_task(one(repo)) for repo in self.repos]
        return sum(await asyncio.gather(*tasks))

    async def aclose(self) -> None:
        await self.product.aclose()


class Product:
    """``RegistryPool.list_tags`` for every repository, ``concurrency`` at a time (the cycle's tag cache)."""

    def __init__(self, url: str, repos: list[str], concurrency: int) -> None:
        settings = settings_from_mapping(
            {"registries": [{"name": "bench", "prefix": _PREFIX, "api_url": url, "limit": 0}]}
        )
        self.pool = RegistryPool(settings.registries)
        self.images = [ImageSpec(name=ImageName(_PREFIX, repo), written_name=f"{_PREFIX}/{repo}") for repo in repos]
        self.concurrency = concurrency

    @property
    def requests(self) -> int:
        return self.pool.counter.total

    async def round(self) -> int:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(image: ImageSpec) -> int:
            async with limit:
                return len(await self.pool.list_tags(image))

        tasks = [asyncio.create_task(one(image)) for image in self.images]
        return sum(await asyncio.gather(*tasks))

    async def aclose(self) -> None:
        await self.pool.aclose()


class Cold:
    """``Product`` with a new pool every round, as ``run --once`` or a service's first cycle lists: the
    ping, new connections, every ``TagInfo`` made."""

    def __init__(self, url: str, repos: list[str], concurrency: int) -> None:
        self.args = (url, repos, concurrency)
        self.requests = 0

    async def round(self) -> int:
        product = Product(*self.args)
        try:
            return await product.round()
        finally:
            self.requests += product.requests
            await product.aclose()

    async def aclose(self) -> None:
        pass


async def measure(run: Callable[[], Awaitable[int]]) -> dict[str, float]:
    """One round's wall time, main-thread CPU and process CPU, and the tags it read."""
    wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
    tags = await run()
    return {
        "wall_s": time.perf_counter() - wall,
        "thread_cpu_s": time.thread_time() - thread,
        "process_cpu_s": time.process_time() - process,
        "tags": tags,
    }


RUNNERS: dict[str, Any] = {"floor": Floor, "client": Client, "product": Product, "cold": Cold}


async def bench(
    url: str, repos: list[str], concurrency: int, rounds: int, names: list[str]
) -> dict[str, dict[str, float]]:
    """Medians of ``rounds`` rounds of each runner in ``names``."""
    runners = {name: RUNNERS[name](url, repos, concurrency) for name in names}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in runners}
    try:
        for runner in runners.values():
            await runner.round()  # connections, the ping
        for _ in range(rounds):
            for name, runner in runners.items():
                before = runner.requests
                sample = await measure(runner.round)
                sample["requests"] = runner.requests - before
                samples[name].append(sample)
    finally:
        for runner in runners.values():
            await runner.aclose()
    report: dict[str, dict[str, float]] = {}
    for name, rows in samples.items():
        if not rows:
            continue
        medians = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        medians["thread_cpu_ms_per_request"] = 1000 * medians["thread_cpu_s"] / medians["requests"]
        medians["process_cpu_ms_per_request"] = 1000 * medians["process_cpu_s"] / medians["requests"]
        medians["thread_cpu_min_s"] = min(row["thread_cpu_s"] for row in rows)
        report[name] = medians
    if "product" in report and "floor" in report:
        report["product_over_floor"] = {
            "thread_cpu": report["product"]["thread_cpu_s"] / report["floor"]["thread_cpu_s"],
            "process_cpu": report["product"]["process_cpu_s"] / report["floor"]["process_cpu_s"],
        }
    return report


def _without_before(argv: list[str]) -> list[str]:
    """``argv`` without ``--before TREE`` (or ``--before=TREE``)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--before":
            skip = True
        elif not arg.startswith("--before="):
            kept.append(arg)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the registry's API root (not a delaying proxy)")
    parser.add_argument("--repos", type=int, default=200, help="how many bench/svc-NNN repositories")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=sorted(RUNNERS), action="append", help="run only these (repeatable)")
    parser.add_argument("--before", metavar="TREE", help="first run with the image_updater of this tree")
    args = parser.parse_args()
    if args.before:
        argv = _without_before(sys.argv[1:])
        print(f"before ({args.before}):", flush=True)
        env = {**os.environ, "PYTHONPATH": args.before}
        subprocess.run([sys.executable, __file__, *argv], env=env, check=True)
        print("after:")
    catalog = httpx.get(args.url.rstrip("/") + "/v2/_catalog", params={"n": 1000}).json()["repositories"]
    repos = sorted(r for r in catalog if r.startswith("bench/svc-"))[: args.repos]
    if len(repos) < args.repos:
        print(f"the registry has only {len(repos)} bench/svc-NNN repositories", file=sys.stderr)
    names = [name for name in RUNNERS if name in (args.only or RUNNERS)]
    report = asyncio.run(bench(args.url.rstrip("/"), repos, args.concurrency, args.rounds, names))
    print(
        f"image_updater: {Path(image_updater.__file__).parent}; {len(repos)} repositories, medians of "
        f"{args.rounds} rounds"
    )
    for name in [name for name in names if name in report]:
        row = report[name]
        print(
            f"{name:8} wall {row['wall_s'] * 1000:7.1f} ms  thread CPU {row['thread_cpu_s'] * 1000:7.1f} ms "
            f"(min {row['thread_cpu_min_s'] * 1000:.1f})  process CPU {row['process_cpu_s'] * 1000:7.1f} ms  "
            f"{row['requests']:.0f} requests, {row['tags']:.0f} tags  "
            f"{row['thread_cpu_ms_per_request']:.3f} ms thread CPU per request"
        )
    if "product_over_floor" in report:
        ratio = report["product_over_floor"]
        print(f"product / floor: thread CPU {ratio['thread_cpu']:.2f}x, process CPU {ratio['process_cpu']:.2f}x")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
