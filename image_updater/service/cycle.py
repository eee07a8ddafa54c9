"""One update cycle: the one place that joins Applications, registries, selection and write-back.

Tag listings start at once for every distinct image, concurrently and shared by every Application that
tracks it; Git work is grouped per repository and branch, so each gets at most one commit. Applications
with ``write-back-method: argocd`` (the ``kubernetes`` source) are patched one by one instead
(:mod:`image_updater.service.argocd_writeback`). One Application's failure is recorded in its outcome
and never stops the others. Before every write the cycle asks ``may_write`` (is this replica still the
leader?); a cycle cancelled meanwhile lets a Git command already running finish, never cutting a push
in half, and starts no other write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog

from image_updater.adapters.git.credentials import GitCredentialSource, Identity, Signing
from image_updater.adapters.git.workspace import GitWorkspace
from image_updater.adapters.k8s.argocd import ImageUpdate
from image_updater.commitmsg import render_commit_message
from image_updater.config import GitSettings
from image_updater.errors import ImageUpdaterError, WriteBackError
from image_updater.model.changes import Change
from image_updater.model.spec import AppSpec, ImageSpec, WriteBackMethod
from image_updater.planner import FileEdit, ReadOnce, Target, current_tag, plan_edits, resolve_target
from image_updater.selection.factory import Selector, build_selector
from image_updater.service.argocd_writeback import (
    NO_CURRENT_IN_APPLICATION,
    ClusterDeps,
    live_tag,
    record_events,
    summary_tag,
    write_application,
)
from image_updater.service.outcome import AppOutcome, CycleResult, ImageOutcome, Status, decide
from image_updater.service.tags import TagCache, TagSource, select_tags
from image_updater.service.writeback import (
    AppEdits,
    Stage,
    WriteBackOutcome,
    branch_namer,
    resolve_credential,
    write_back,
)

__all__ = [
    "AppOutcome",
    "CycleDeps",
    "CycleResult",
    "ImageOutcome",
    "Status",
    "TagSource",
    "run_cycle",
    "select_tags",
]

T = TypeVar("T")


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
    #: the Kubernetes side (argocd write-back, Events, live tags); ``None`` with the files source
    cluster: ClusterDeps | None = None
    #: asked right before every write; ``False`` (this replica no longer leads) stops the write
    may_write: Callable[[], bool] = lambda: True
    clock: Callable[[], float] = time.monotonic
    log: structlog.typing.FilteringBoundLogger = field(default_factory=lambda: structlog.get_logger())


@dataclass
class _Planned:
    outcome: AppOutcome
    edits: list[FileEdit] = field(default_factory=list)


async def run_cycle(apps: Sequence[AppSpec], deps: CycleDeps) -> CycleResult:
    """Process every Application once; see the module docstring."""
    started, cpu_started = deps.clock(), time.process_time()
    result = CycleResult()
    tag_cache = TagCache(deps.tags, deps.max_concurrency)
    selectors: dict[tuple[str, str], Selector] = {}
    groups: dict[tuple[str, str, str], list[AppOutcome]] = {}
    patched: list[AppOutcome] = []
    for app in apps:
        outcome = AppOutcome(app=app)
        result.apps.append(outcome)
        if app.write_back.method is WriteBackMethod.ARGOCD and deps.cluster is None:
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
            tag_cache.begin(selectors[(app.key, image.label)], image)
        if app.write_back.method is WriteBackMethod.ARGOCD:
            patched.append(outcome)
            continue
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

    async def run_patch(outcome: AppOutcome) -> None:
        async with limit:
            await _process_argocd(outcome, selectors, tag_cache, deps, result)

    try:
        await asyncio.gather(*(run_group(k, m) for k, m in groups.items()), *(run_patch(o) for o in patched))
    finally:
        tag_cache.cancel()
    if deps.cluster is not None and deps.cluster.events is not None and not deps.dry_run:
        await record_events([(o.app, o.changes) for o in result.apps], deps.cluster.events, deps.log)
    result.duration_s = deps.clock() - started
    result.cpu_s = time.process_time() - cpu_started
    for outcome in result.apps:
        _log_outcome(deps.log, outcome)
    return result


async def _to_completion(function: Callable[..., T], *args: object) -> T:
    """``function(*args)`` in a worker thread. If the caller is cancelled meanwhile, wait for the thread
    to finish before passing the cancellation on: a Git command is never abandoned half-way, and the
    clone's lock is not given back while Git still works in the clone."""
    future = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait({future})
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what the caller hears about
        raise


async def _process_group(
    repo: str,
    branch: str,
    push: str | None,
    members: list[AppOutcome],
    selectors: dict[tuple[str, str], Selector],
    tag_cache: TagCache,
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
    try:
        await _to_completion(workspace.acquire)
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
    tag_cache: TagCache,
    deps: CycleDeps,
    result: CycleResult,
) -> None:
    try:
        synced = await _to_completion(workspace.sync, branch)
    except ImageUpdaterError as e:
        for outcome in members:
            outcome.error = e
        return
    # Every Application's current tags first, while the tag listings are still on their way (each
    # Application a turn of its own, so that the responses are taken in as they come); then the choices.
    reads = []
    for outcome in members:
        async with tag_cache.turn:
            reads.append(_read_app(outcome, workspace, deps))
    planned: list[_Planned] = []
    stage = Stage(workspace)  # each Application's edits applied in memory as soon as it is planned
    for read in reads:
        planned.append(await _plan_app(read, selectors, tag_cache))
        if planned[-1].edits:
            async with tag_cache.turn:
                stage.add(AppEdits(read.outcome.app.name, tuple(planned[-1].edits)))
    plans = [AppEdits(p.outcome.app.name, tuple(p.edits)) for p in planned if p.edits]
    if not plans:
        return
    staged = stage.finish()

    def message(app_names: list[str], changes: list[Change]) -> str:
        return render_commit_message(deps.git.commit_message, app_names, changes)

    def write() -> WriteBackOutcome:
        return write_back(
            workspace,
            branch=synced,
            push_branch=branch_namer(push, [m.app for m in members]),
            plans=plans,
            message=message,
            retries=deps.git.push_retries,
            dry_run=deps.dry_run,
            staged=staged,
        )

    try:
        if not deps.dry_run and not deps.may_write():
            raise WriteBackError("not written: this replica is no longer the leader")
        written = await _to_completion(write)
    except ImageUpdaterError as e:
        for p in planned:
            if p.edits:
                p.outcome.fail(e, f"write-back failed: {e.message}")
        return
    result.diffs.extend(written.diffs)
    result.push_conflicts += max(0, written.attempts - 1)
    if written.commit:
        result.commits.append(written.commit)
    for p in planned:
        name = p.outcome.app.name
        if name in written.errors:
            p.outcome.fail(written.errors[name], f"not written: {written.errors[name].message}")
        elif p.edits:
            p.outcome.changes = written.changes.get(name, [])
            p.outcome.commit = written.commit


@dataclass
class _Read:
    """What an Application's target files hold: per image, its current tag or why it cannot be read."""

    outcome: AppOutcome
    target: Target | None = None
    current: dict[str, str | ImageUpdaterError | None] = field(default_factory=dict)

    def current_of(self, image: ImageSpec) -> str | None:
        found = self.current[image.label]
        if isinstance(found, ImageUpdaterError):
            raise found
        return found


def _read_app(outcome: AppOutcome, workspace: GitWorkspace, deps: CycleDeps) -> _Read:
    """Resolve the Application's target and read every image's current tag (no network)."""
    app = outcome.app
    read = _Read(outcome)
    view = ReadOnce(workspace)  # each image of the Application reads the same files
    try:
        read.target = resolve_target(app, view, controller_namespace=deps.git.argocd_namespace)
    except ImageUpdaterError as e:
        outcome.error = e.with_context(app=app.name)
        return read
    for image in app.images:
        try:
            found = current_tag(app, image, view, read.target)
            if found is None and deps.cluster is not None:
                found = summary_tag(app, image)  # no such file, or it does not name the image: AIU's source
        except ImageUpdaterError as e:
            read.current[image.label] = e
        else:
            read.current[image.label] = found
    return read


async def _plan_app(read: _Read, selectors: dict[tuple[str, str], Selector], tag_cache: TagCache) -> _Planned:
    """Choose each image's tag and plan the edits of those that change."""
    outcome = read.outcome
    planned = _Planned(outcome)
    if read.target is None:
        return planned
    for image in outcome.app.images:
        decision = await _choose(outcome, image, read.current_of, selectors, tag_cache)
        if decision is not None and decision.status is Status.UPDATED and decision.selected is not None:
            planned.edits.extend(plan_edits(outcome.app, image, decision.selected, read.target))
    return planned


async def _process_argocd(
    outcome: AppOutcome,
    selectors: dict[tuple[str, str], Selector],
    tag_cache: TagCache,
    deps: CycleDeps,
    result: CycleResult,
) -> None:
    """Choose tags for an Application written by ``write-back-method: argocd`` and patch it."""
    app = outcome.app
    assert deps.cluster is not None
    updates: list[ImageUpdate] = []
    for image in app.images:
        decision = await _choose(
            outcome, image, lambda i: live_tag(app, i), selectors, tag_cache, no_current=NO_CURRENT_IN_APPLICATION
        )
        if decision is not None and decision.status is Status.UPDATED and decision.selected is not None:
            updates.append(ImageUpdate(image, decision.selected))
    if not updates:
        return
    try:
        running = {i.image: i.current for i in outcome.images}
        written = await write_application(
            app, updates, deps.cluster, dry_run=deps.dry_run, may_write=deps.may_write, running=running
        )
    except ImageUpdaterError as e:
        outcome.fail(e, f"write-back failed: {e.message}")
        return
    outcome.changes = list(written.changes)
    if written.diff:
        result.diffs.append(written.diff)


async def _choose(
    outcome: AppOutcome,
    image: ImageSpec,
    current_of: Callable[[ImageSpec], str | None],
    selectors: dict[tuple[str, str], Selector],
    tag_cache: TagCache,
    **decide_options: str,
) -> ImageOutcome | None:
    """Read the current tag, list and choose; the image's outcome is recorded and returned (``None`` when
    its selector could not be built, which is recorded already)."""
    app = outcome.app
    selector = selectors.get((app.key, image.label))
    if selector is None:
        return None
    try:
        current = current_of(image)
        selection = await tag_cache.select(selector, image)
    except ImageUpdaterError as e:
        error = e.with_context(app=app.name, image=image.label)
        decision = ImageOutcome(image.label, Status.FAILED, e.message, error=error)
    else:
        decision = decide(image, current, selection, selector, **decide_options)
    outcome.images.append(decision)
    return decision


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
