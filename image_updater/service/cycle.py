"""One update cycle: the one place that joins Applications, registries, selection and write-back.

Tag listings start at once for every distinct image, concurrently and shared by every Application that
tracks it; Git work is grouped per repository and branch, so each gets at most one commit. One
Application's failure is recorded in its outcome and never stops the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import structlog

from image_updater.adapters.git.credentials import GitCredentialSource, Identity, Signing
from image_updater.adapters.git.workspace import GitWorkspace
from image_updater.commitmsg import render_commit_message
from image_updater.config import GitSettings
from image_updater.errors import ImageUpdaterError, WriteBackError
from image_updater.model.changes import Change
from image_updater.model.ref import ImageName
from image_updater.model.spec import AppSpec, ImageSpec, WriteBackMethod
from image_updater.planner import FileEdit, current_tag, plan_edits, resolve_target
from image_updater.selection.base import Selection, TagInfo
from image_updater.selection.factory import Selector, build_selector
from image_updater.service.writeback import AppEdits, branch_namer, resolve_credential, write_back


class TagSource(Protocol):
    """Where tags come from (the registries, in production)."""

    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        """Every tag of the image's repository."""
        ...

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        """``tags`` with ``digest`` and ``created`` filled in, for strategies that need them."""
        ...


class Status(StrEnum):
    """How an image or an Application fared in a cycle."""

    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class ImageOutcome:
    """One image of one Application: what it runs, what was chosen, and what happened."""

    image: str
    status: Status
    reason: str
    current: str | None = None
    selected: str | None = None
    error: ImageUpdaterError | None = None


@dataclass
class AppOutcome:
    """One Application's result in a cycle."""

    app: AppSpec
    images: list[ImageOutcome] = field(default_factory=list)
    error: ImageUpdaterError | None = None
    commit: str | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if self.error is not None or any(i.status is Status.FAILED for i in self.images):
            return Status.FAILED
        if self.changes:
            return Status.UPDATED
        return Status.UNCHANGED

    def errors(self) -> list[ImageUpdaterError]:
        """Every error of this Application, with its context filled in."""
        found = [self.error] if self.error is not None else []
        found += [i.error for i in self.images if i.error is not None]
        return [e.with_context(app=self.app.name) for e in found]


@dataclass
class CycleResult:
    """Everything a cycle did; the CLI turns it into output and an exit code."""

    apps: list[AppOutcome] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    #: pushes rejected because someone pushed meanwhile (each was re-applied on the new tip)
    push_conflicts: int = 0
    duration_s: float = 0.0

    @property
    def failed(self) -> bool:
        return any(a.status is Status.FAILED for a in self.apps)


@dataclass
class CycleDeps:
    """What a cycle needs from outside, passed in (no globals)."""

    tags: TagSource
    git: GitSettings
    cache_dir: Path
    max_concurrency: int = 10
    dry_run: bool = False
    #: reads ``git:secret:<namespace>/<name>`` credentials (Kubernetes Secrets); ``None``: not available
    git_credentials: GitCredentialSource | None = None
    clock: Callable[[], float] = time.monotonic
    log: structlog.typing.FilteringBoundLogger = field(default_factory=lambda: structlog.get_logger())


@dataclass
class _Planned:
    outcome: AppOutcome
    edits: list[FileEdit] = field(default_factory=list)


class _TagCache:
    """Tag listings of one cycle, one request per distinct repository, shared by all users."""

    def __init__(self, source: TagSource, limit: int) -> None:
        self.source = source
        self._tasks: dict[ImageName, asyncio.Task[list[TagInfo]]] = {}
        self._semaphore = asyncio.Semaphore(limit)

    def start(self, image: ImageSpec) -> None:
        if image.name not in self._tasks:
            self._tasks[image.name] = asyncio.create_task(self._fetch(image))

    async def _fetch(self, image: ImageSpec) -> list[TagInfo]:
        async with self._semaphore:
            return await self.source.list_tags(image)

    async def get(self, image: ImageSpec) -> list[TagInfo]:
        self.start(image)
        return await asyncio.shield(self._tasks[image.name])

    def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()


async def run_cycle(apps: Sequence[AppSpec], deps: CycleDeps) -> CycleResult:
    """Process every Application once; see the module docstring."""
    started = deps.clock()
    result = CycleResult()
    tag_cache = _TagCache(deps.tags, deps.max_concurrency)
    selectors: dict[tuple[str, str], Selector] = {}
    groups: dict[tuple[str, str, str], list[AppOutcome]] = {}
    for app in apps:
        outcome = AppOutcome(app=app)
        result.apps.append(outcome)
        if app.write_back.method is not WriteBackMethod.GIT:
            outcome.error = WriteBackError(
                "write-back-method argocd patches the Application through the Kubernetes API, which the "
                "files source does not use; set write-back-method: git",
                app=app.name,
            )
            continue
        for image in app.images:
            try:
                selectors[(app.key, image.label)] = build_selector(image)
            except ImageUpdaterError as e:
                outcome.images.append(
                    ImageOutcome(image.label, Status.FAILED, e.message, error=e.with_context(app=app.name))
                )
                continue
            tag_cache.start(image)
        repo = app.write_back.repository or app.source.repo_url
        branch = app.write_back.checkout_branch or app.source.target_revision
        push = app.write_back.push_branch or ""
        groups.setdefault((repo, branch, push), []).append(outcome)

    repo_locks: dict[str, asyncio.Lock] = {}
    limit = asyncio.Semaphore(deps.max_concurrency)

    async def run_group(key: tuple[str, str, str], members: list[AppOutcome]) -> None:
        repo, branch, push = key
        async with limit, repo_locks.setdefault(repo, asyncio.Lock()):
            await _process_group(repo, branch, push or None, members, selectors, tag_cache, deps, result)

    try:
        await asyncio.gather(*(run_group(k, m) for k, m in groups.items()))
    finally:
        tag_cache.cancel()
    result.duration_s = deps.clock() - started
    for outcome in result.apps:
        _log_outcome(deps.log, outcome)
    return result


async def _process_group(
    repo: str,
    branch: str,
    push: str | None,
    members: list[AppOutcome],
    selectors: dict[tuple[str, str], Selector],
    tag_cache: _TagCache,
    deps: CycleDeps,
    result: CycleResult,
) -> None:
    try:
        credential = await resolve_credential(repo, [m.app for m in members], deps.git, deps.git_credentials)
    except ImageUpdaterError as e:
        for outcome in members:
            outcome.error = e
        return
    workspace = GitWorkspace(
        repo,
        deps.cache_dir,
        credential=credential,
        identity=Identity(deps.git.user, deps.git.email),
        signing=Signing(deps.git.signing_key, deps.git.signing_method, deps.git.sign_off),
    )
    await asyncio.to_thread(workspace.acquire)
    try:
        await _sync_plan_write(workspace, repo, branch, push, members, selectors, tag_cache, deps, result)
    finally:
        workspace.release()


async def _sync_plan_write(
    workspace: GitWorkspace,
    repo: str,
    branch: str,
    push: str | None,
    members: list[AppOutcome],
    selectors: dict[tuple[str, str], Selector],
    tag_cache: _TagCache,
    deps: CycleDeps,
    result: CycleResult,
) -> None:
    try:
        synced = await asyncio.to_thread(workspace.sync, branch)
    except ImageUpdaterError as e:
        for outcome in members:
            outcome.error = e
        return
    planned = [await _plan_app(outcome, workspace, selectors, tag_cache, deps) for outcome in members]
    plans = [AppEdits(p.outcome.app.name, tuple(p.edits)) for p in planned if p.edits]
    if not plans:
        return

    def message(app_names: list[str], changes: list[Change]) -> str:
        return render_commit_message(deps.git.commit_message, app_names, changes)

    try:
        written = await asyncio.to_thread(
            write_back,
            workspace,
            branch=synced,
            push_branch=branch_namer(push, [m.app for m in members]),
            plans=plans,
            message=message,
            retries=deps.git.push_retries,
            dry_run=deps.dry_run,
        )
    except ImageUpdaterError as e:
        for p in planned:
            if p.edits:
                p.outcome.error = e
                _unmark_updates(p.outcome, f"write-back failed: {e.message}")
        return
    result.diffs.extend(written.diffs)
    result.push_conflicts += max(0, written.attempts - 1)
    if written.commit:
        result.commits.append(written.commit)
    for p in planned:
        name = p.outcome.app.name
        if name in written.errors:
            p.outcome.error = written.errors[name]
            _unmark_updates(p.outcome, f"not written: {written.errors[name].message}")
        elif p.edits:
            p.outcome.changes = written.changes.get(name, [])
            p.outcome.commit = written.commit


async def select_tags(selector: Selector, image: ImageSpec, tags: Sequence[TagInfo], source: TagSource) -> Selection:
    """Filter, fetch metadata for what is left when the strategy needs it, then choose."""
    kept, skipped = selector.filter.apply(tags)
    if selector.needs_metadata and kept:
        kept = await source.with_metadata(image, kept)
    return selector.choose(kept, skipped)


def _unmark_updates(outcome: AppOutcome, reason: str) -> None:
    for image in outcome.images:
        if image.status is Status.UPDATED:
            image.status = Status.FAILED
            image.reason = reason


async def _plan_app(
    outcome: AppOutcome,
    workspace: GitWorkspace,
    selectors: dict[tuple[str, str], Selector],
    tag_cache: _TagCache,
    deps: CycleDeps,
) -> _Planned:
    app = outcome.app
    planned = _Planned(outcome)
    try:
        target = resolve_target(app, workspace, controller_namespace=deps.git.argocd_namespace)
    except ImageUpdaterError as e:
        outcome.error = e.with_context(app=app.name)
        return planned
    for image in app.images:
        selector = selectors.get((app.key, image.label))
        if selector is None:
            continue  # already failed at build
        try:
            current = current_tag(app, image, workspace, target)
            tags = await tag_cache.get(image)
            selection = await select_tags(selector, image, tags, tag_cache.source)
        except ImageUpdaterError as e:
            error = e.with_context(app=app.name, image=image.label)
            outcome.images.append(ImageOutcome(image.label, Status.FAILED, e.message, error=error))
            continue
        decision = _decide(image, current, selection, selector)
        outcome.images.append(decision)
        if decision.status is Status.UPDATED and decision.selected is not None:
            planned.edits.extend(plan_edits(app, image, decision.selected, target))
    return planned


def _decide(image: ImageSpec, current: str | None, selection: Selection, selector: Selector) -> ImageOutcome:
    """Whether ``selection`` means an update of an image that runs ``current``."""
    chosen = selection.selected
    if chosen is None:
        return ImageOutcome(image.label, Status.SKIPPED, selection.reason, current=current)
    if current is None and not image.force_update:
        return ImageOutcome(
            image.label,
            Status.SKIPPED,
            "the target files do not name this image with a tag; set force-update to write one",
            selected=chosen,
        )
    if current == chosen:
        return ImageOutcome(image.label, Status.UNCHANGED, selection.reason, current=current, selected=chosen)
    if current is not None and selector.would_downgrade(current, chosen):
        return ImageOutcome(
            image.label,
            Status.SKIPPED,
            f"{current} is newer than every listed candidate (best {chosen}); not downgrading",
            current=current,
            selected=chosen,
        )
    return ImageOutcome(image.label, Status.UPDATED, selection.reason, current=current, selected=chosen)


def _log_outcome(log: structlog.typing.FilteringBoundLogger, outcome: AppOutcome) -> None:
    """The one summary line per Application per cycle."""
    status = outcome.status
    fields = {
        "app": outcome.app.name,
        "status": status.value,
        "images": len(outcome.app.images),
        "updated": sum(1 for i in outcome.images if i.status is Status.UPDATED),
    }
    if outcome.changes:
        fields["changes"] = [c.describe() for c in outcome.changes]
    if outcome.commit:
        fields["commit"] = outcome.commit[:12]
    skipped = [f"{i.image}: {i.reason}" for i in outcome.images if i.status is Status.SKIPPED]
    if skipped:
        fields["skipped"] = skipped
    if status is Status.FAILED:
        log.error("application failed", errors=[str(e) for e in outcome.errors()], **fields)
    else:
        log.info("application processed", **fields)
