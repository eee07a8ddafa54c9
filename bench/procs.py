"""The product as the benchmark runs it: ``image-updater run --once`` and the service, as processes.

Figures come from what the product itself says (its JSON log lines, ``/metrics``) and from the
operating system (wall time, ``ru_maxrss`` of the finished process, ``VmRSS`` of the running one).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.proxy import RegistryProxy

ROOT = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "image-updater")]


def _env(git_password: str, src: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE_UPDATER_")}
    env["BENCH_GIT_PASSWORD"] = git_password
    env.setdefault("HOME", str(Path.home()))
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def command(src: Path | None) -> list[str]:
    """The CLI: the installed one, or the package in another source tree (a worktree at an older
    commit, for before/after figures in one run)."""
    if src is None:
        return CLI
    return [sys.executable, "-c", "import sys; from image_updater.cli import main; sys.exit(main())"]


def log_events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines in ``text`` (other lines are left out)."""
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


@dataclass
class OnceRun:
    """One ``run --once``: the cycle time it logged, its whole-process time, and what it printed."""

    cycle_s: float
    #: CPU time the product spent in the cycle (its ``cpu_s``; Git's processes not included)
    cycle_cpu_s: float
    process_s: float
    max_rss_mb: float
    exit_code: int
    updates: int
    errors: list[str]


def run_once(config: Path, git_password: str, *extra: str, src: Path | None = None) -> OnceRun:
    """Run ``image-updater run --once`` (from ``src`` when given) and read its figures."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*command(src), "run", "--once", "--config", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(git_password, src),
        cwd=src,  # `python -c` puts the working folder first on sys.path: it must not be this tree
        text=True,
    )
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    readers = [
        threading.Thread(target=lambda: out_chunks.append(proc.stdout.read() if proc.stdout else "")),
        threading.Thread(target=lambda: err_chunks.append(proc.stderr.read() if proc.stderr else "")),
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    process_s = time.perf_counter() - started
    for reader in readers:
        reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = "".join(out_chunks), "".join(err_chunks)
    finished = [e for e in log_events(stderr) if e.get("event") == "cycle finished"]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if proc.returncode and not errors:
        errors = stderr.splitlines()[-5:]
    return OnceRun(
        cycle_s=float(finished[-1]["duration_s"]) if finished else float("nan"),
        cycle_cpu_s=float(finished[-1].get("cpu_s", "nan")) if finished else float("nan"),
        process_s=process_s,
        max_rss_mb=usage.ru_maxrss / 1024,
        exit_code=proc.returncode,
        updates=sum(1 for line in stdout.splitlines() if ": updated " in line),
        errors=errors[:5],
    )


def rss_mb(pid: int) -> float:
    """Resident memory of a running process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Sample:
    """The service after one cycle: its log line, counters so far, memory."""

    event: dict[str, Any]
    requests: Counter[str]
    pushes: float
    rss_mb: float
    at: float


@dataclass
class ServiceProcess:
    """``image-updater run`` (the service) as a child process, read through its logs and ``/metrics``."""

    config: Path
    git_password: str
    health_port: int
    extra: tuple[str, ...] = ()
    #: another source tree to run the service from (see :func:`command`)
    src: Path | None = None
    proc: subprocess.Popen[str] | None = None
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    lines: list[str] = field(default_factory=list)

    def __enter__(self) -> ServiceProcess:
        self.proc = subprocess.Popen(
            [*command(self.src), "run", "--config", str(self.config), "--listen-address", "127.0.0.1", *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_env(self.git_password, self.src),
            cwd=self.src,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            for event in log_events(line):
                event["_at"] = time.monotonic()
                self.events.put(event)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_event(self, name: str, timeout: float = 600.0, **fields: Any) -> dict[str, Any]:
        """The next log line whose ``event`` is ``name`` (and whose fields match)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name!r} log line within {timeout}s:\n{''.join(self.lines[-20:])}")
            try:
                event = self.events.get(timeout=min(left, 1.0))
            except queue.Empty:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"the service exited:\n{''.join(self.lines[-20:])}") from None
                continue
            if event.get("event") == name and all(event.get(k) == v for k, v in fields.items()):
                return event

    def wait_ready(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError("the service never became ready")

    def metrics(self) -> tuple[Counter[str], float]:
        """Registry requests by kind so far, and Git pushes so far."""
        text = httpx.get(f"http://127.0.0.1:{self.health_port}/metrics", timeout=10).text
        requests: Counter[str] = Counter()
        pushes = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "image_updater_registry_requests_total":
                    requests[sample.labels["kind"]] += int(sample.value)
                elif sample.name == "image_updater_git_pushes_total":
                    pushes += sample.value
        return requests, pushes

    def next_cycle(self, kind: str = "scheduled", timeout: float = 600.0) -> Sample:
        """Wait for the next cycle of ``kind`` to finish; counters and memory right after it."""
        event = self.wait_event("cycle finished", timeout, cycle=kind)
        requests, pushes = self.metrics()
        return Sample(event, requests, pushes, rss_mb(self.pid), event["_at"])


def quiet(proxy: RegistryProxy) -> RegistryProxy:
    """No traceback on stderr when a client drops a kept-alive connection (the figures are on stdout)."""
    proxy._httpd.handle_error = lambda *_: None  # type: ignore[method-assign]
    return proxy
