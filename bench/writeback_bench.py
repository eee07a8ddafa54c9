"""Write-back cost against history length: a repository of 10 commits against one of 10,000 commits.

Both repositories end with the same tree (200 files, one kustomization); only their history differs.
Against the real Git server of the test harness (nginx + git-http-backend, basic auth), each round runs
one real cycle that updates the image and pushes (sync by fetch, read, edit, commit, push). The first
cycle clones into the cache; the rounds after it are timed with the cache warm, alternating between the
two repositories. Prints both medians and their ratio; the promise is a ratio within 1.5.

    .venv/bin/python bench/writeback_bench.py [--rounds 9] [--commits 10000]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog

from tests.harness.gitserver import GitHttpServer, run_git
from tests.integration.writeback_kit import make_app, run_once

FILES = 200
KUSTOMIZATION = "kind: Kustomization\nresources: []\nimages:\n- name: nginx\n  newTag: 1.0.0\n"


def build_repo(server: GitHttpServer, name: str, commits: int) -> str:
    """A bare repository with ``commits`` commits (one fast-import stream), ending in the same tree."""
    url = server.create_repo(name, {})
    stream = bytearray()
    ident = "Bench <bench@example.com> 1700000000 +0000"
    for number in range(commits):
        stream += f"commit refs/heads/main\nmark :{number + 1}\ncommitter {ident}\n".encode()
        message = f"change {number}".encode()
        stream += f"data {len(message)}\n".encode() + message + b"\n"
        if number:
            stream += f"from :{number}\n".encode()
        if number == 0:
            for index in range(FILES):
                body = f"file {index}\n".encode()
                stream += f"M 100644 inline data/f{index:03}.txt\ndata {len(body)}\n".encode() + body + b"\n"
            kustomization = KUSTOMIZATION.encode()
            stream += f"M 100644 inline app/kustomization.yaml\ndata {len(kustomization)}\n".encode()
            stream += kustomization + b"\n"
        else:
            index = number % FILES
            body = f"file {index} revision {number // FILES}\n".encode() if number < commits - FILES else None
            if body is None:  # the last commits bring every file back to the same final text
                body = f"file {index}\n".encode()
            stream += f"M 100644 inline data/f{index:03}.txt\ndata {len(body)}\n".encode() + body + b"\n"
    stream += b"done\n"
    run_git(["fast-import", "--quiet", "--done"], git_dir=server.bare_path(name), input_bytes=bytes(stream))
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed cycles per repository")
    parser.add_argument("--commits", type=int, default=10_000, help="history length of the long repository")
    args = parser.parse_args()
    quiet = structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr), wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    with GitHttpServer() as server, tempfile.TemporaryDirectory(prefix="bench-cache-") as cache_dir:
        cache = Path(cache_dir)
        started = time.perf_counter()
        repos = {"short": build_repo(server, "short", 10), "long": build_repo(server, "long", args.commits)}
        built = time.perf_counter() - started
        counts = {name: server.commit_count(name) for name in repos}
        apps = {name: make_app(name, url, "app", "nginx", target="kustomization") for name, url in repos.items()}
        versions = [f"1.0.{n}" for n in range(args.rounds + 2)]
        cold: dict[str, float] = {}
        times: dict[str, list[float]] = {name: [] for name in repos}
        for round_ in range(args.rounds + 1):
            tags = {"library/nginx": versions[: round_ + 2]}
            for name in repos:
                t0 = time.perf_counter()
                result = run_once([apps[name]], server, cache, tags, log=quiet)
                elapsed = time.perf_counter() - t0
                if not result.commits:
                    raise SystemExit(f"round {round_} of {name} made no commit: {result.apps[0].errors()}")
                if round_ == 0:
                    cold[name] = elapsed
                else:
                    times[name].append(elapsed)
        short, long_ = statistics.median(times["short"]), statistics.median(times["long"])
        print(f"repositories built in {built:.1f} s: short {counts['short']} commits, long {counts['long']} commits")
        print(f"cold (clone + write-back): short {cold['short'] * 1000:.0f} ms, long {cold['long'] * 1000:.0f} ms")
        print(f"warm write-back median over {args.rounds} cycles each:")
        print(f"  short: {short * 1000:.1f} ms   long: {long_ * 1000:.1f} ms")
        print(f"ratio long/short: {long_ / short:.2f} (promise: within 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
