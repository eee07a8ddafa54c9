"""SIGKILL at any point of a cycle: the real CLI (``image-updater run --once``) as a subprocess, killed
with its whole process group at instrumented points of its Git work and at random moments.

Each round pushes a new tag of two images (two Applications sharing a config repository), runs the CLI
until it is killed, checks the remote (both files old or both new, ``git fsck`` clean, at most the one
new commit), then runs the CLI to the end and checks that the update is there exactly once, that the
clone cache was repaired (no half-done clone, no Git lock file left) and that the run exited 0.

Instrumented points: Git is reached through a wrapper (first on ``PATH`` and as GitPython's executable)
that, for the named sub-command, kills the process group before running it, while it runs (after a
random delay) or right after it returns. ``ROUNDS`` kills by default, ``LONG_ROUNDS`` with
``IMAGE_UPDATER_TEST_LONG=1``; the seed is printed, and ``IU_SIGKILL_SEED`` replays a sequence.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from image_updater.adapters.git.workspace import GitWorkspace
from tests.faults.kit import Config, bodies, fsck, scaled
from tests.harness.gitserver import GitHttpServer
from tests.harness.registry import RegistryServer
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration

ROUNDS, LONG_ROUNDS = 10, 50
CLI = Path(sys.executable).with_name("image-updater")
POINTS = [
    "before:clone",
    "during:clone",
    "after:clone",
    "before:fetch",
    "during:fetch",
    "after:fetch",
    "after:checkout",
    "after:reset",
    "before:commit",
    "during:commit",
    "after:commit",
    "before:push",
    "during:push",
    "after:push",
    "random",
]
WRAPPER = """#!/bin/sh
# git, killed at IU_KILL_AT (before:SUB, during:SUB, after:SUB) with the whole process group
skip=0
sub=
for arg in "$@"; do
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  case "$arg" in
    -c|-C) skip=1 ;;
    -*) ;;
    *) sub=$arg; break ;;
  esac
done
case "$IU_KILL_AT" in
  "before:$sub") kill -KILL 0 ;;
  "after:$sub") "$IU_REAL_GIT" "$@"; kill -KILL 0 ;;
  "during:$sub") "$IU_REAL_GIT" "$@" & sleep "$IU_KILL_DELAY"; kill -KILL 0 ;;
esac
exec "$IU_REAL_GIT" "$@"
"""


def _wrapper(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "git"
    path.write_text(WRAPPER)
    path.chmod(0o755)
    return path


def _run(config: Path, env: dict[str, str], kill_after_s: float | None = None) -> tuple[int, str]:
    """Run the CLI in its own process group; kill the group after ``kill_after_s``. Returns (code, stderr)."""
    proc = subprocess.Popen(
        [str(CLI), "run", "--once", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=kill_after_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of the group may outlive the round
    return proc.returncode, err


def test_sigkill_at_any_point_never_leaves_a_partial_commit_and_the_next_run_updates_once(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path
) -> None:
    rounds = scaled(ROUNDS, LONG_ROUNDS)
    seed = int(os.environ.get("IU_SIGKILL_SEED") or random.randrange(1 << 30))
    print(f"sigkill: {rounds} rounds, seed {seed}")
    rng = random.Random(seed)
    images = {app: f"{registry_anon.host}/sigkill/{app}" for app in ("a", "b")}
    for app in images:
        push_tags(registry_anon, f"sigkill/{app}", "1.0.0")
    url = git_server.create_repo(
        "sigkill", {f"{app}/kustomization.yaml": kustomization(image, "1.0.0") for app, image in images.items()}
    )
    config = Config(
        tmp_path, git_server, registries=[{"name": "r", "prefix": registry_anon.host, "api_url": registry_anon.url}]
    )
    for app, image in images.items():
        config.add_app(f"{app}.yaml", application(app, url, app, image))
    config_path = config.write()
    wrapper = _wrapper(tmp_path / "bin")
    real_git = shutil.which("git")
    assert real_git
    base_env = {
        **config.env(),
        "PATH": f"{wrapper.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_PYTHON_GIT_EXECUTABLE": str(wrapper),
        "IU_REAL_GIT": real_git,
    }
    clean_s = 2.0
    kills = 0
    started = time.monotonic()
    for round_ in range(1, rounds + 1):
        old, new = f"1.0.{round_ - 1}", f"1.0.{round_}"
        for app in images:
            push_tags(registry_anon, f"sigkill/{app}", new)
        point = POINTS[(round_ - 1) % len(POINTS)] if round_ <= len(POINTS) else rng.choice(POINTS)
        if point.endswith(":clone"):
            shutil.rmtree(config.cache, ignore_errors=True)
        env = {**base_env, "IU_KILL_AT": point, "IU_KILL_DELAY": f"{rng.uniform(0.0, 0.08):.3f}"}
        code, err = _run(config_path, env, kill_after_s=rng.uniform(0.2, clean_s) if point == "random" else None)
        killed = code == -signal.SIGKILL
        kills += killed
        assert killed or code == 0, f"round {round_} ({point}): exit {code}\n{err}"

        # the remote after the kill: the old state or the whole new commit, nothing in between. One
        # snapshot: the server may still be taking a push whose client was killed
        tip = git_server.rev_parse("sigkill")
        assert tip is not None
        texts = {app: git_server.read_file("sigkill", f"{app}/kustomization.yaml", tip) for app in images}
        state = {
            app: next((t for t in (old, new) if texts[app] == kustomization(images[app], t)), None) for app in images
        }
        assert state["a"] == state["b"] and state["a"] is not None, f"round {round_} ({point}): {state}"
        assert git_server.commit_count("sigkill", tip) == round_ + (state["a"] == new), f"round {round_} ({point})"
        fsck(git_server, "sigkill")

        # the next run completes the update, exactly once
        begun = time.monotonic()
        code, err = _run(config_path, {**base_env, "IU_KILL_AT": ""})
        clean_s = max(0.5, time.monotonic() - begun)
        assert code == 0, f"round {round_} ({point}): the run after the kill failed\n{err}"
        for app, image in images.items():
            assert git_server.read_file("sigkill", f"{app}/kustomization.yaml") == kustomization(image, new)
        assert git_server.commit_count("sigkill") == round_ + 1, f"round {round_} ({point})"
        made = [b for b in bodies(git_server, "sigkill") if all(f"{i}: {old} -> {new}" in b for i in images.values())]
        assert len(made) == 1, f"round {round_} ({point}): {len(made)} commits for {old} -> {new}"
        assert not list(config.cache.glob(".partial-*")), f"round {round_} ({point}): half-done clone left"
        clone = GitWorkspace(url, config.cache).path
        assert not [p for p in (clone / ".git").rglob("*.lock")], f"round {round_} ({point}): Git lock left"

    elapsed = time.monotonic() - started
    print(f"sigkill: {kills} of {rounds} runs killed in {elapsed:.1f} s")
    assert kills >= rounds * 0.8, f"only {kills} of {rounds} runs were killed"
