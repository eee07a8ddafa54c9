"""Git write-back of one repository and branch: apply edits, one commit, push, survive conflicts.

The edits of every Application that shares the repository and branch go into one commit. A rejected
push (someone pushed meanwhile) is answered by fetching, re-applying the same pure edits on the new
tip and pushing again, a bounded number of times. Never a force push, so nobody's commit is ever
lost. On the new tip, an Application's edit must still start from the values it was planned from: if
someone changed such a value under us (or the file no longer parses, or is gone), that Application is
reported and its files are left as the remote has them; the others are still written.

``git-branch: base:target`` reads ``base`` and pushes ``target``; a templated target is named from the
changes. A target branch that exists already is built on (fetched, edited, pushed fast-forward); one
that does not is created from ``base``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from image_updater.adapters.git.credentials import GitCredentialSource
from image_updater.adapters.git.workspace import GitWorkspace
from image_updater.commitmsg import ImageChange, render_branch_name
from image_updater.config import GitCredential, GitSettings
from image_updater.errors import EditError, ImageUpdaterError, PushRejectedError, WriteBackError
from image_updater.model.changes import Change
from image_updater.model.spec import AppSpec
from image_updater.planner import FileEdit, unified_diff

#: names the branch to push from every change of the commit
BranchNamer = Callable[[list[Change]], str]


@dataclass(frozen=True)
class AppEdits:
    """The edits planned for one Application."""

    app: str
    edits: tuple[FileEdit, ...]


@dataclass
class Applied:
    """The result of applying every plan to one tree."""

    changes: dict[str, list[Change]] = field(default_factory=dict)
    errors: dict[str, ImageUpdaterError] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    #: the new text of every changed path
    texts: dict[str, str] = field(default_factory=dict)

    def all_changes(self) -> list[Change]:
        """Every change, in plan order."""
        return [c for app in self.changes for c in self.changes[app]]


@dataclass
class WriteBackOutcome:
    """What a write-back did: the commit (``None`` if nothing changed), where it went, how many push
    attempts it took, per-app changes and errors, and the diffs."""

    commit: str | None = None
    branch: str | None = None
    attempts: int = 0
    changes: dict[str, list[Change]] = field(default_factory=dict)
    errors: dict[str, ImageUpdaterError] = field(default_factory=dict)
    diffs: list[str] = field(default_factory=list)


def _key(change: Change) -> tuple[str, str, str | None, str]:
    return (change.file, change.image, change.old, change.new)


class Stage:
    """Edits applied one Application at a time to the texts of one tree, in memory (nothing is written).

    :func:`apply_edits` stages every plan at once; a cycle stages each Application as soon as its tags
    are chosen, while the other listings are still on their way, and hands the result to
    :func:`write_back` (``staged``), which writes it on its first attempt. An Application whose edit
    fails is reported and its edits are dropped; the others go on. With a ``baseline`` (the changes
    planned on the first tree), an Application whose edit now makes a change that was not planned (a
    value changed under us) is reported the same way.
    """

    def __init__(self, workspace: GitWorkspace, baseline: dict[str, list[Change]] | None = None) -> None:
        self.workspace = workspace
        self.baseline = baseline
        self.result = Applied()
        self._texts: dict[str, str] = {}
        self._originals: dict[str, str] = {}

    def add(self, plan: AppEdits) -> None:
        """Apply one Application's edits on top of those staged before."""
        staged = dict(self._texts)
        app_changes: list[Change] = []
        try:
            for edit in plan.edits:
                path = self.workspace.canonical(edit.path)
                old = staged.get(path)
                if old is None:
                    old = self.workspace.read(path)
                    if old is None and not edit.create:
                        raise EditError("file does not exist", path=edit.path)
                    self._originals.setdefault(path, old or "")
                    old = old or ""
                edited = edit.apply(old)
                staged[path] = edited.text
                app_changes.extend(edited.changes)
            if self.baseline is not None:
                _check_against(self.baseline.get(plan.app, []), app_changes)
        except ImageUpdaterError as e:
            self.result.errors[plan.app] = e.with_context(app=plan.app)
            return
        self._texts = staged
        if app_changes:
            self.result.changes[plan.app] = app_changes

    def finish(self) -> Applied:
        """What the staged edits change: the paths, their diffs and new texts."""
        result, texts, originals = self.result, self._texts, self._originals
        result.changed = [p for p, t in texts.items() if t != originals.get(p)]
        result.diffs = [unified_diff(p, originals[p], texts[p]) for p in result.changed]
        result.texts = {path: texts[path] for path in result.changed}
        return result


def apply_edits(
    workspace: GitWorkspace,
    plans: Sequence[AppEdits],
    *,
    write: bool,
    baseline: dict[str, list[Change]] | None = None,
) -> Applied:
    """Apply every Application's edits to the working tree (or only diff them when ``write`` is false);
    see :class:`Stage`."""
    stage = Stage(workspace, baseline)
    for plan in plans:
        stage.add(plan)
    result = stage.finish()
    if write:
        _write(workspace, result)
    return result


def _write(workspace: GitWorkspace, applied: Applied) -> None:
    for path in applied.changed:
        workspace.write(path, applied.texts[path])


def _check_against(planned: list[Change], now: list[Change]) -> None:
    expected = {_key(c) for c in planned}
    for change in now:
        if _key(change) not in expected:
            was = next((c.old for c in planned if (c.file, c.image) == (change.file, change.image)), None)
            raise EditError(
                f"{change.image} changed under us (now {change.old or '(none)'}, planned from "
                f"{was or '(none)'}); not written, the file is left as the remote has it",
                path=change.file or None,
            )


def write_back(
    workspace: GitWorkspace,
    *,
    branch: str,
    push_branch: str | BranchNamer | None,
    plans: Sequence[AppEdits],
    message: Callable[[list[str], list[Change]], str],
    retries: int = 5,
    dry_run: bool = False,
    staged: Applied | None = None,
) -> WriteBackOutcome:
    """Apply ``plans`` to the synced ``branch``, commit once and push, re-applying after a rejection.

    The workspace must have been synced to ``branch`` by the caller (which read the current tags
    there). ``push_branch`` is the branch to push (``None``: ``branch``), or a function naming it from
    the changes. Raises :class:`PushRejectedError` when the push is still rejected after ``retries``
    re-applications, and other :class:`ImageUpdaterError` for Git failures. ``staged``: ``plans``
    already applied to the synced tree (:class:`Stage`), so the first attempt does not apply them again.
    """
    outcome = WriteBackOutcome()
    planned = staged if staged is not None else apply_edits(workspace, plans, write=False)
    outcome.changes, outcome.errors, outcome.diffs = planned.changes, planned.errors, planned.diffs
    if dry_run or not planned.changed:
        return outcome
    target = push_branch(planned.all_changes()) if callable(push_branch) else push_branch or branch
    outcome.branch = target
    live = [plan for plan in plans if plan.app not in planned.errors]
    errors = dict(planned.errors)
    # edits applied to the tree as it is now: written as they are on the first attempt, not made again
    ready: Applied | None = planned
    if target != branch and workspace.remote_has(target):
        # an update branch from an earlier cycle: build on it, from the values it holds
        workspace.sync(target)
        planned = ready = apply_edits(workspace, live, write=False)
        errors.update(planned.errors)
        live = [plan for plan in live if plan.app not in planned.errors]
    while True:
        outcome.attempts += 1
        if ready is not None:
            applied, ready = ready, None
            _write(workspace, applied)
        else:
            applied = apply_edits(workspace, live, write=True, baseline=planned.changes)
        outcome.changes, outcome.diffs = applied.changes, applied.diffs
        outcome.errors = {**errors, **applied.errors}
        if not applied.changed:
            return outcome
        commit = workspace.commit(message(list(applied.changes), applied.all_changes()), applied.changed)
        if commit is None:
            return outcome
        try:
            workspace.push(target)
        except PushRejectedError:
            if outcome.attempts > retries:
                raise
            workspace.sync(branch)
            if target != branch and workspace.remote_has(target):
                workspace.sync(target)
            continue
        outcome.commit = commit
        return outcome


def branch_namer(push: str | None, apps: Sequence[AppSpec]) -> str | BranchNamer | None:
    """The push branch, or for a templated ``git-branch`` target a function naming it from the
    changes (``{{.SHA256}}``, ``{{range .Images}}{{.Name}} {{.Alias}} {{.OldTag}} {{.NewTag}}{{end}}``)."""
    if push is None or "{{" not in push:
        return push
    aliases = {image.label: image.alias or "" for app in apps for image in app.images}
    names = [app.name for app in apps]

    def name(changes: list[Change]) -> str:
        distinct = dict.fromkeys((c.image, c.old or "", c.new) for c in changes)
        images = [ImageChange(image, aliases.get(image, ""), old, new) for image, old, new in distinct]
        return render_branch_name(push, images, app_names=names)

    return name


async def resolve_credential(
    repo: str, apps: Sequence[AppSpec], settings: GitSettings, source: GitCredentialSource | None
) -> GitCredential | None:
    """The credentials for ``repo``: a ``git:secret:ns/name`` Secret named by an Application of the
    group (the first that names one), else the configured entry with the longest matching URL."""
    refs = [app.write_back.git_credentials for app in apps]
    spec = next((ref for ref in refs if ref and ref != "repocreds"), None)
    if spec is None:
        return settings.credential_for(repo)
    if source is None:
        raise WriteBackError(
            f"write-back-method git:{spec} reads a Kubernetes Secret, which needs the kubernetes source"
        )
    found = await source.git(f"git:{spec}", url=repo)
    return dataclasses.replace(found, literal=True)
