"""Helpers for the write-back tests: Applications, a fixed tag source, and one cycle against the real
Git server with settings of the test's choosing (no registry needed: the write-back is what is tested)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from image_updater.annotations import parse_application
from image_updater.config import GitCredential, GitSettings
from image_updater.model.spec import AppSpec, ImageSpec
from image_updater.selection.base import TagInfo
from image_updater.service.cycle import CycleDeps, CycleResult, run_cycle
from tests.harness.gitserver import GitHttpServer

PREFIX = "argocd-image-updater.argoproj.io/"


class FixedTags:
    """Tags per image repository path (``acme/web``), as a registry would list them."""

    def __init__(self, tags: Mapping[str, Sequence[str]]) -> None:
        self.tags = {name: list(values) for name, values in tags.items()}

    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        return [TagInfo(tag) for tag in self.tags.get(image.name.repository, [])]

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        return list(tags)


def make_app(
    name: str,
    repo_url: str,
    path: str,
    image_list: str,
    *,
    target: str | None = None,
    namespace: str = "argocd",
    source: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
    **annotations: str,
) -> AppSpec:
    """An Application with write-back-method git; ``annotations`` keys use ``_`` for ``-``."""
    notes = {PREFIX + "image-list": image_list, PREFIX + "write-back-method": "git"}
    if target:
        notes[PREFIX + "write-back-target"] = target
    notes.update({PREFIX + key.replace("__", ".").replace("_", "-"): value for key, value in annotations.items()})
    manifest: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "annotations": notes},
        "spec": {"source": {"repoURL": repo_url, "targetRevision": "main", "path": path, **(source or {})}},
    }
    if status:
        manifest["status"] = dict(status)
    return parse_application(manifest)


def git_settings(server: GitHttpServer, **changes: Any) -> GitSettings:
    """Settings with the server's credentials (literal text, as a Secret would give them)."""
    credential = GitCredential(url=f"{server.url}/", username=server.username, password=server.password)
    return dataclasses.replace(
        GitSettings(user="image-updater", email="bot@example.com", credentials=(credential,)), **changes
    )


def cycle_logger() -> structlog.typing.FilteringBoundLogger:
    """A logger printing to the test's stdout, whatever another test left in structlog's configuration."""
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(sys.stdout),
        processors=[structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    return logger


def run_once(
    apps: Sequence[AppSpec],
    server: GitHttpServer,
    cache: Path,
    tags: Mapping[str, Sequence[str]],
    **deps: Any,
) -> CycleResult:
    """One cycle; ``deps`` may hold ``git`` (settings), ``log``, ``dry_run``, ``git_credentials``."""
    settings = deps.pop("git", None) or git_settings(server)
    log = deps.pop("log", None) or cycle_logger()
    cycle_deps = CycleDeps(tags=FixedTags(tags), git=settings, cache_dir=cache, log=log, **deps)
    return asyncio.run(run_cycle(list(apps), cycle_deps))
