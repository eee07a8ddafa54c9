"""What a cycle did: per image, per Application and for the whole cycle; and the one rule that turns a
selection into an update decision (:func:`decide`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from image_updater.errors import ImageUpdaterError
from image_updater.model.changes import Change
from image_updater.model.spec import AppSpec, ImageSpec
from image_updater.selection.base import UNREADABLE, Selection
from image_updater.selection.factory import Selector

#: why an image with no current tag is not written (the Git write-back's wording)
NO_CURRENT_IN_FILES = "the target files do not name this image with a tag; set force-update to write one"


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

    def fail(self, error: ImageUpdaterError, reason: str) -> None:
        """The write failed: record ``error`` and turn every image counted as updated into a failure."""
        self.error = error.with_context(app=self.app.name)
        for image in self.images:
            if image.status is Status.UPDATED:
                image.status = Status.FAILED
                image.reason = reason


@dataclass
class CycleResult:
    """Everything a cycle did; the CLI turns it into output and an exit code."""

    apps: list[AppOutcome] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    #: pushes rejected because someone pushed meanwhile (each was re-applied on the new tip)
    push_conflicts: int = 0
    duration_s: float = 0.0
    #: CPU time this process spent in the cycle (all its threads; Git's processes not included)
    cpu_s: float = 0.0

    @property
    def failed(self) -> bool:
        return any(a.status is Status.FAILED for a in self.apps)


def decide(
    image: ImageSpec,
    current: str | None,
    selection: Selection,
    selector: Selector,
    *,
    no_current: str = NO_CURRENT_IN_FILES,
) -> ImageOutcome:
    """Whether ``selection`` means an update of an image that runs ``current``; ``no_current`` says why
    an image without a current tag is left alone (unless ``force-update``)."""
    chosen = selection.selected
    if chosen is None:
        return ImageOutcome(image.label, Status.SKIPPED, selection.reason, current=current)
    if current is None and not image.force_update:
        return ImageOutcome(image.label, Status.SKIPPED, no_current, selected=chosen)
    if current == chosen:
        return ImageOutcome(image.label, Status.UNCHANGED, selection.reason, current=current, selected=chosen)
    if current is not None and current in selection.extra.get(UNREADABLE, "").split():
        return ImageOutcome(
            image.label,
            Status.SKIPPED,
            f"the registry lists {current} but failed to serve its image, so {chosen} may be older; not moving",
            current=current,
            selected=chosen,
        )
    if current is not None and selector.would_downgrade(current, chosen):
        return ImageOutcome(
            image.label,
            Status.SKIPPED,
            f"{current} is newer than every listed candidate (best {chosen}); not downgrading",
            current=current,
            selected=chosen,
        )
    return ImageOutcome(image.label, Status.UPDATED, selection.reason, current=current, selected=chosen)
