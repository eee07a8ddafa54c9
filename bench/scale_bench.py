"""Fast at scale: a full cycle over A Applications against the floor, in one run, with every figure.

Starts the real registry (distribution, storage on /dev/shm), the real Git server (nginx +
git-http-backend) and the harness proxy (``--delay-ms`` added to every response), fills them with
:mod:`bench.scale_gen` (A=1000 Applications, N=200 repositories x K=300 tags; ``--small`` for a quick
run), then, ``--runs`` times each, alternating:

- the floor (:mod:`bench.floor`: list the N repositories' tags, 10 at a time, nothing else) and one
  ``image-updater run --once`` cycle, directly against the registry and through the proxy; the cycle
  time is the ``duration_s`` of the product's ``cycle finished`` log line, printed beside the
  whole-process time; requests by kind are counted at the proxy, pushes at the Git server;
- the service (``image-updater run``) through the proxy for ``--cycles`` cycles: the first cycle
  (with updates) and the second (nothing new), requests by kind from ``/metrics``, resident memory
  idle, after the first cycle and after the last;
- the ``metadata`` Applications (newest-build, digest): first and second cycle requests by kind;
- the registry limited to 20 requests a second, behind a proxy answering every 10th request 429 with
  ``Retry-After``, and webhook-to-commit latency over 50 pushes (:mod:`bench.scale_extra`).

    .venv/bin/python bench/scale_bench.py [--small] [--runs 5] [--only timing,service,metadata,limit,webhook]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procs import OnceRun, ServiceProcess, quiet, rss_mb, run_once
from bench.scale_apps import Workload, build_workload, write_config
from bench.scale_gen import FULL, SMALL, Size, fill_registry
from tests.harness.gitserver import GitHttpServer
from tests.harness.proxy import RegistryProxy
from tests.harness.registry import RegistryServer
from tests.harness.util import free_port

SECTIONS = ("timing", "service", "metadata", "limit", "webhook")
KINDS = ("ping", "token", "tags", "manifest", "blob", "other")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def kinds_text(counts: Counter[str] | dict[str, int]) -> str:
    shown = [f"{k} {counts.get(k, 0)}" for k in KINDS if counts.get(k, 0)]
    return ", ".join(shown) or "none"


def floor(url: str, repos: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("floor.py")), "--url", url, "--repos", str(repos)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


class Bench:
    """The servers, the workload and the figures of one invocation."""

    def __init__(self, args: argparse.Namespace, size: Size, work: Path) -> None:
        self.args = args
        self.size = size
        self.work = work
        self.registry = RegistryServer()
        self.git = GitHttpServer(fcgi_children=8)
        self.proxy = quiet(RegistryProxy(self.registry, delay_s=args.delay_ms / 1000))
        self.workload: Workload | None = None
        #: other source trees to time beside this one (label, path)
        self.compare: list[tuple[str, Path]] = [
            (label, Path(path)) for label, _, path in (item.partition("=") for item in args.compare)
        ]

    def close(self) -> None:
        self.proxy.close()
        self.git.close()
        self.registry.close()

    def prepare(self) -> None:
        started = time.perf_counter()
        filled = fill_registry(self.registry, self.size, workers=self.args.workers)
        print(
            f"registry filled: {self.size.repos} repositories x {self.size.tags} tags "
            f"({self.size.repos * self.size.tags} tags, {filled.requests} requests) in {filled.seconds:.1f} s "
            f"({self.size.repos * self.size.tags / filled.seconds:.0f} tags/s)"
        )
        self.workload = build_workload(
            self.git, self.size, filled, self.work / "applications", outdated=self.args.outdated
        )
        w = self.workload
        kinds = Counter(app.target for app in w.apps)
        images = sum(len(app.images) for app in w.apps)
        print(
            f"config repos: {len(w.config_repos)}, Applications: {len(w.apps)} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), images: {images}, "
            f"distinct repositories: {len({i.repo for a in w.apps for i in a.images})}, "
            f"outdated images: {w.expected_updates(w.apps)}; metadata Applications: {len(w.metadata)} "
            f"(outdated {w.expected_updates(w.metadata)}); built in {time.perf_counter() - started:.1f} s"
        )

    def config(self, name: str, apps: Path, api_url: str, **options: object) -> Path:
        return write_config(
            self.work / f"{name}.yaml",
            applications=apps,
            api_url=api_url,
            git=self.git,
            cache_dir=self.work / "cache",
            **options,  # type: ignore[arg-type]
        )

    def heads(self) -> dict[str, str | None]:
        assert self.workload is not None
        return {name: self.git.rev_parse(name) for name in self.workload.config_repos}

    def once(self, config: Path, src: Path | None = None) -> tuple[OnceRun, int]:
        """Reset the config repos, run one cycle; returns the run and the repositories pushed to."""
        assert self.workload is not None
        self.workload.reset(self.git)
        before = self.heads()
        run = run_once(config, self.git.password, src=src)
        after = self.heads()
        if run.exit_code != 0 or run.errors:
            print(f"  ! run --once exited {run.exit_code}: {run.errors}")
        return run, sum(1 for k in before if before[k] != after[k])

    def hold(self) -> None:
        """Keep the servers up for cycles run by hand (profiling); Ctrl-C ends it."""
        assert self.workload is not None
        reset = self.work / "reset.sh"
        reset.write_text(
            "#!/bin/sh\nset -e\n"
            + "".join(
                f"git --git-dir={self.git.bare_path(name)} update-ref refs/heads/main {commit}\n"
                for name, commit in self.workload.config_repos.items()
            )
        )
        reset.chmod(0o755)
        direct = self.config("direct", self.workload.main_dir, self.registry.url)
        proxied = self.config("proxied", self.workload.main_dir, self.proxy.url)
        print(
            f"\nholding; reset the config repos with {reset}\n"
            f"  export BENCH_GIT_PASSWORD={self.git.password}\n"
            f"  image-updater run --once --config {proxied}   (through the proxy)\n"
            f"  image-updater run --once --config {direct}   (directly)\n"
            f"  python bench/floor.py --url {self.proxy.url} --repos {self.size.repos}",
            flush=True,
        )
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # servers stopped on kill too
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

    # -- sections -----------------------------------------------------------------------------------

    def timing(self) -> dict[str, float]:
        assert self.workload is not None
        n = self.size.repos
        direct = self.config("direct", self.workload.main_dir, self.registry.url)
        proxied = self.config("proxied", self.workload.main_dir, self.proxy.url)
        expected = self.workload.expected_updates(self.workload.apps)
        cold, cold_pushes = self.once(direct)
        print(
            f"\n[timing] cold cache (clones made): cycle {cold.cycle_s:.3f} s, process {cold.process_s:.3f} s, "
            f"updates {cold.updates}/{expected}, pushes {cold_pushes}"
        )
        rows: dict[str, list[float]] = {}

        def add(key: str, value: float) -> None:
            rows.setdefault(key, []).append(value)

        for number in range(1, self.args.runs + 1):
            fd = floor(self.registry.url, n)
            run_d, pushes_d = self.once(direct)
            self.proxy.reset_counts()
            fp = floor(self.proxy.url, n)
            floor_requests = self.proxy.total
            self.proxy.reset_counts()
            run_p, pushes_p = self.once(proxied)
            counts = self.proxy.counts
            add("floor_direct", fd["seconds"])
            add("cycle_direct", run_d.cycle_s)
            add("process_direct", run_d.process_s)
            add("floor_proxy", fp["seconds"])
            add("cycle_proxy", run_p.cycle_s)
            add("cpu_proxy", run_p.cycle_cpu_s)
            add("process_proxy", run_p.process_s)
            add("requests", sum(counts.values()))
            add("floor_requests", floor_requests)
            add("rss", max(run_d.max_rss_mb, run_p.max_rss_mb))
            for label, src in self.compare:
                other, _ = self.once(proxied, src)
                add(f"cycle_{label}", other.cycle_s)
                add(f"process_{label}", other.process_s)
                print(
                    f"    {label} ({src}): cycle {other.cycle_s:.3f} s (process {other.process_s:.3f} s), "
                    f"updates {other.updates}/{expected}"
                )
            print(
                f"  run {number}: direct floor {fd['seconds']:.3f} s, cycle {run_d.cycle_s:.3f} s "
                f"(process {run_d.process_s:.3f} s) | {self.args.delay_ms} ms proxy floor {fp['seconds']:.3f} s, "
                f"cycle {run_p.cycle_s:.3f} s (CPU {run_p.cycle_cpu_s:.3f} s, process {run_p.process_s:.3f} s) | "
                f"requests {kinds_text(counts)} "
                f"(floor {floor_requests}) | updates {run_p.updates}/{expected}, pushes {pushes_p}/{pushes_d} | "
                f"peak RSS {run_p.max_rss_mb:.0f} MB"
            )
        m = {key: median(values) for key, values in rows.items()}
        print(f"[timing] medians of {self.args.runs} runs (A={len(self.workload.apps)}, N={n}):")
        print(
            f"  direct: floor {m['floor_direct']:.3f} s, cycle {m['cycle_direct']:.3f} s, "
            f"ratio {m['cycle_direct'] / m['floor_direct']:.2f}; process {m['process_direct']:.3f} s"
        )
        print(
            f"  {self.args.delay_ms} ms proxy: floor {m['floor_proxy']:.3f} s, cycle {m['cycle_proxy']:.3f} s, "
            f"ratio {m['cycle_proxy'] / m['floor_proxy']:.2f} (target <= 1.5); cycle CPU {m['cpu_proxy']:.3f} s; "
            f"process {m['process_proxy']:.3f} s"
        )
        for label, _ in self.compare:
            print(
                f"  {label} through the proxy: cycle {m[f'cycle_{label}']:.3f} s "
                f"(process {m[f'process_{label}']:.3f} s); this tree {m['cycle_proxy']:.3f} s "
                f"(process {m['process_proxy']:.3f} s)"
            )
        print(
            f"  requests: cycle {m['requests']:.0f}, floor {m['floor_requests']:.0f}, "
            f"ratio {m['requests'] / m['floor_requests']:.3f} (target <= 1.05); "
            f"per distinct repository {m['requests'] / n:.3f}; peak RSS {m['rss']:.0f} MB"
        )
        return m

    def service(self, apps: Path, name: str, cycles: int, *, reset: bool = True, src: Path | None = None) -> list:
        """Run the service (from ``src`` when given) through the proxy for ``cycles`` cycles; one sample
        per cycle."""
        assert self.workload is not None
        port = free_port()
        config = self.config(name, apps, self.proxy.url, health_port=port)
        if reset:
            self.workload.reset(self.git)
        samples = []
        interval = f"{self.args.service_interval}s"
        with ServiceProcess(config, self.git.password, port, ("--interval", interval), src) as service:
            for _ in range(cycles):
                samples.append(service.next_cycle())
        return samples

    def service_section(self) -> None:
        assert self.workload is not None
        empty = self.work / "no-applications"
        empty.mkdir(exist_ok=True)
        port = free_port()
        idle_config = self.config("idle", empty, self.proxy.url, health_port=port)
        with ServiceProcess(idle_config, self.git.password, port, ("--interval", "1h")) as idle:
            idle.wait_ready()
            time.sleep(1.0)
            idle_rss = rss_mb(idle.pid)
        samples = self.service(self.workload.main_dir, "service", self.args.cycles)
        print(
            f"\n[service] {len(samples)} cycles of the service through the proxy "
            f"(interval {self.args.service_interval} s)"
        )
        previous: Counter[str] = Counter()
        pushes_before = 0.0
        for index, sample in enumerate(samples, start=1):
            delta = sample.requests - previous
            previous = sample.requests
            pushed = sample.pushes - pushes_before
            pushes_before = sample.pushes
            if index <= 3 or index == len(samples):
                print(
                    f"  cycle {index}: {sample.event['duration_s']:.3f} s, requests {kinds_text(delta)}, "
                    f"pushes {pushed:.0f}, RSS {sample.rss_mb:.1f} MB"
                )
        first, last = samples[0].rss_mb, samples[-1].rss_mb
        second = samples[1].rss_mb if len(samples) > 1 else first
        print(
            f"  RSS: idle (no Applications) {idle_rss:.1f} MB (target < 80); after cycle 1 {first:.1f} MB; "
            f"after cycle {len(samples)} {last:.1f} MB; growth from cycle 1 {100 * (last - first) / first:+.1f} % "
            f"(target < 10 %), from cycle 2 {100 * (last - second) / second:+.1f} %"
        )
        for label, src in self.compare:
            others = self.service(self.workload.main_dir, f"service-{label}", 3, src=src)
            theirs = ", ".join(f"{o.event['duration_s']:.3f} s" for o in others)
            ours = ", ".join(f"{o.event['duration_s']:.3f} s" for o in samples[:3])
            print(f"  {label} ({src}): cycles 1-3 took {theirs}; this tree {ours}")

    def metadata_section(self) -> None:
        assert self.workload is not None
        samples = self.service(self.workload.metadata_dir, "metadata", 2)
        first = samples[0].requests
        second = samples[1].requests - samples[0].requests
        print(
            f"\n[metadata] {len(self.workload.metadata)} Applications with newest-build and digest images: "
            f"cycle 1 {samples[0].event['duration_s']:.3f} s, requests {kinds_text(first)}, pushes "
            f"{samples[0].pushes:.0f}; cycle 2 {samples[1].event['duration_s']:.3f} s, requests {kinds_text(second)}, "
            f"pushes {samples[1].pushes - samples[0].pushes:.0f} (target: no manifest or blob request, no push)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="A=100, N=20, K=30")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--outdated", type=float, default=0.05, help="share of images running an older tag")
    parser.add_argument("--delay-ms", type=int, default=20)
    parser.add_argument("--workers", type=int, default=16, help="push threads")
    parser.add_argument("--cycles", type=int, default=20, help="service cycles for the memory figures")
    parser.add_argument("--service-interval", type=int, default=8, help="seconds between service cycles")
    parser.add_argument("--pushes", type=int, default=50, help="webhook pushes")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also time the cycle with the package in PATH (e.g. a git worktree at an older commit)",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}")
    parser.add_argument(
        "--hold",
        action="store_true",
        help="fill, write the configs and a reset script, print how to run a cycle by hand, and keep the "
        "servers up until interrupted (for profiling)",
    )
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    size = SMALL if args.small else FULL
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        bench = Bench(args, size, Path(tmp))
        try:
            bench.prepare()
            if args.hold:
                bench.hold()
                return 0
            sections: dict[str, Callable[[], object]] = {
                "timing": bench.timing,
                "service": bench.service_section,
                "metadata": bench.metadata_section,
            }
            if only & {"limit", "webhook"}:
                from bench.scale_extra import limit_section, webhook_section

                sections["limit"] = lambda: limit_section(bench)
                sections["webhook"] = lambda: webhook_section(bench)
            for name in SECTIONS:
                if name in only:
                    sections[name]()
        finally:
            bench.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
