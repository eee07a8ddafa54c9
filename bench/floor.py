"""The floor: the least a cycle could do, listing the tags of N repositories and nothing else.

A minimal concurrent httpx script: one ``AsyncClient`` (HTTP/1.1 keep-alive), ``--concurrency``
requests in flight (the product's default ``max_concurrency`` is 10), ``Link: rel="next"`` pages
followed. It prints one JSON line: the wall time of the listing (process start-up excluded), the
requests sent and the tags read.

    .venv/bin/python bench/floor.py --url http://127.0.0.1:5000 --repos 200 [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

import httpx

_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


async def list_all(url: str, repos: list[str], concurrency: int) -> tuple[int, int]:
    """List every repository's tags; returns (requests, tags)."""
    limit = asyncio.Semaphore(concurrency)
    requests = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(repo: str) -> int:
            nonlocal requests
            path: str | None = f"/v2/{repo}/tags/list"
            tags = 0
            while path:
                async with limit:
                    response = await client.get(path)
                requests += 1
                response.raise_for_status()
                tags += len(response.json().get("tags") or [])
                found = _NEXT.search(response.headers.get("link", ""))
                path = found.group(1) if found else None
            return tags

        counts = await asyncio.gather(*(one(repo) for repo in repos))
    return requests, sum(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="registry (or proxy) API root")
    parser.add_argument("--repos", type=int, required=True, help="how many bench/svc-NNN repositories")
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    repos = [f"bench/svc-{i:03d}" for i in range(args.repos)]
    started = time.perf_counter()
    requests, tags = asyncio.run(list_all(args.url, repos, args.concurrency))
    print(json.dumps({"seconds": time.perf_counter() - started, "requests": requests, "tags": tags}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
