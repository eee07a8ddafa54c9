"""The one place that turns an image's settings into a strategy and filter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from image_updater.errors import ConstraintError, ImageUpdaterError
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import Selection, Skipped, Strategy, TagInfo
from image_updater.selection.filters import TagFilter
from image_updater.selection.semver import SemverStrategy


@dataclass(frozen=True)
class Selector:
    """A filter and a strategy for one image; ``select`` explains itself in the :class:`Selection`."""

    filter: TagFilter
    strategy: Strategy

    @property
    def needs_metadata(self) -> bool:
        return self.strategy.needs_metadata

    def would_downgrade(self, current: str, selected: str) -> bool:
        """See :meth:`Strategy.would_downgrade`."""
        return self.strategy.would_downgrade(current, selected)

    def select(self, tags: Sequence[TagInfo]) -> Selection:
        """Filter, then let the strategy choose; skipped tags from both steps are reported.

        For strategies that need metadata, filter first, fill in the metadata of what is kept, then
        :meth:`choose` (the cycle does that, see ``service.cycle.select_tags``).
        """
        kept, skipped = self.filter.apply(tags)
        return self.choose(kept, skipped)

    def choose(self, kept: Sequence[TagInfo], skipped: Sequence[Skipped]) -> Selection:
        """Let the strategy choose among filtered tags; ``skipped`` are the filter's left-outs."""
        selection = self.strategy.select(kept)
        return replace(selection, skipped=tuple(skipped) + selection.skipped)


def build_strategy(name: str, constraint: str | None) -> Strategy:
    """The strategy called ``name`` (canonical names, see :data:`annotations.STRATEGIES`)."""
    if name == "semver":
        return SemverStrategy(constraint)
    raise ConstraintError(f"update strategy {name!r} is not supported by this version")


def build_selector(image: ImageSpec) -> Selector:
    """Build the selector for an image; bad settings raise naming the image."""
    try:
        return Selector(
            filter=TagFilter.build(image.allow_tags, image.ignore_tags),
            strategy=build_strategy(image.strategy, image.constraint),
        )
    except ImageUpdaterError as e:
        raise e.with_context(image=image.label) from None
