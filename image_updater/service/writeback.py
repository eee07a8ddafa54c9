"""Git write-back of one repository and branch: apply edits, one commit, push, survive conflicts.

A rejected push (someone pushed meanwhile) is answered by fetching, re-applying the same pure edits on
the new tip and pushing again, a bounded number of times. Never a force push, so nobody's commit is
ever lost; an edit that no longer applies is reported and the remote is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from image_updater.adapters.git.workspace import GitWorkspace
from image_updater.errors import EditError, ImageUpdaterError, PushRejectedError
from image_updater.model.changes import Change
from image_updater.planner import FileEdit, unified_diff


@dataclass(frozen=True)
class AppEdits:
    """The edits planned for one Application."""

    app: str
    edits: tuple[FileEdit, ...]


@dataclass
class WriteBackOutcome:
    """What a write-back did: the commit (``None`` if nothing changed), per-app changes and errors."""

    commit: str | None = None
    attempts: int = 0
    changes: dict[str, list[Change]] = field(default_factory=dict)
    errors: dict[str, ImageUpdaterError] = field(default_factory=dict)
    diffs: list[str] = field(default_factory=list)


def apply_edits(
    workspace: GitWorkspace, plans: Sequence[AppEdits], *, write: bool
) -> tuple[dict[str, list[Change]], dict[str, ImageUpdaterError], list[str], list[str]]:
    """Apply every Application's edits to the working tree (or only diff them when ``write`` is false).

    An Application whose edit fails is reported and its other edits are dropped; the others go on.
    Returns (changes by app, errors by app, changed paths, unified diffs).
    """
    changes: dict[str, list[Change]] = {}
    errors: dict[str, ImageUpdaterError] = {}
    texts: dict[str, str] = {}
    originals: dict[str, str] = {}
    for plan in plans:
        staged = dict(texts)
        app_changes: list[Change] = []
        try:
            for edit in plan.edits:
                old = staged.get(edit.path)
                if old is None:
                    old = workspace.read(edit.path)
                    if old is None:
                        raise EditError("file does not exist", path=edit.path)
                    originals.setdefault(edit.path, old)
                result = edit.apply(old)
                staged[edit.path] = result.text
                app_changes.extend(result.changes)
        except ImageUpdaterError as e:
            errors[plan.app] = e.with_context(app=plan.app)
            continue
        texts = staged
        if app_changes:
            changes[plan.app] = app_changes
    changed = [p for p, t in texts.items() if t != originals.get(p)]
    diffs = [unified_diff(p, originals[p], texts[p]) for p in changed]
    if write:
        for path in changed:
            workspace.write(path, texts[path])
    return changes, errors, changed, diffs


def write_back(
    workspace: GitWorkspace,
    *,
    branch: str,
    push_branch: str | None,
    plans: Sequence[AppEdits],
    message: Callable[[list[str], list[Change]], str],
    retries: int = 5,
    dry_run: bool = False,
) -> WriteBackOutcome:
    """Apply ``plans`` to the synced ``branch``, commit once and push, re-applying after a rejection.

    The workspace must have been synced to ``branch`` by the caller (which read the current tags there).
    """
    outcome = WriteBackOutcome()
    target = push_branch or branch
    while True:
        outcome.attempts += 1
        changes, errors, changed, diffs = apply_edits(workspace, plans, write=not dry_run)
        outcome.changes, outcome.errors, outcome.diffs = changes, errors, diffs
        if dry_run or not changed:
            return outcome
        all_changes = [c for app in changes for c in changes[app]]
        commit = workspace.commit(message(list(changes), all_changes), changed)
        if commit is None:
            return outcome
        try:
            workspace.push(target)
        except PushRejectedError:
            if outcome.attempts > retries:
                raise
            workspace.sync(target)
            continue
        outcome.commit = commit
        return outcome
