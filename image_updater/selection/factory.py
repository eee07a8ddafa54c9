"""The one place that turns an image's settings into a filter, an extractor and a strategy.

Every setting is checked here, when the selector is built, so a typo is an error for that image naming
the annotation (``allow-tags``, ``ignore-tags``, ``tag-extract``, ``platforms``, the ``image-list``
constraint or ``update-strategy``) before any registry is asked; nothing falls back silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from image_updater.errors import ConstraintError, ImageUpdaterError
from image_updater.model.spec import ImageSpec
from image_updater.selection.alphabetical import AlphabeticalStrategy
from image_updater.selection.base import LazySkips, Selection, Skipped, Strategy, TagInfo
from image_updater.selection.digest import DigestStrategy
from image_updater.selection.extract import TAG_EXTRACT, TagExtractor
from image_updater.selection.filters import TagFilter
from image_updater.selection.newest_build import NewestBuildStrategy
from image_updater.selection.numerical import NumericalStrategy
from image_updater.selection.platforms import parse_platforms
from image_updater.selection.semver import SemverStrategy

#: canonical strategy names; the aliases (``latest``, ``name``) are resolved by the annotation parser
STRATEGY_NAMES = ("alphabetical", "digest", "newest-build", "numerical", "semver")
#: strategies that compare the tag text, so ``tag-extract`` can feed them a value
_EXTRACTABLE = frozenset({"alphabetical", "numerical", "semver"})


@dataclass(frozen=True)
class Selector:
    """A filter, an optional ``tag-extract`` and a strategy for one image.

    ``select`` (or ``choose`` after the cycle has fetched metadata) explains itself in the
    :class:`Selection`: the filter's and the extractor's left-outs come first in ``skipped``.
    """

    filter: TagFilter
    strategy: Strategy
    extractor: TagExtractor | None = None
    #: said after the reason of every selection (a setting that has no effect, as in AIU)
    note: str | None = None

    @property
    def needs_metadata(self) -> bool:
        """Whether the cycle must fill in digests and creation dates before :meth:`choose`."""
        return self.strategy.needs_metadata

    def would_downgrade(self, current: str, selected: str) -> bool:
        """Whether ``selected`` ranks below a running tag that is still acceptable.

        The running tag must pass the filters (an ignored or disallowed tag is no reason to stay) and,
        with ``tag-extract``, both tags are compared by their extracted values.
        """
        if not self.filter.accepts(current):
            return False
        if self.extractor is not None:
            now, chosen = self.extractor.value(current), self.extractor.value(selected)
            if now is None or chosen is None:
                return False
            current, selected = now, chosen
        return self.strategy.would_downgrade(current, selected)

    def select(self, tags: Sequence[TagInfo]) -> Selection:
        """Filter, then let the strategy choose; skipped tags from every step are reported.

        For strategies that need metadata, filter first, fill in the metadata of what is kept, then
        :meth:`choose` (the cycle does that, see ``service.cycle.select_tags``).
        """
        kept, skipped = self.filter.apply(tags)
        return self.choose(kept, skipped)

    def choose(self, kept: Sequence[TagInfo], skipped: Sequence[Skipped]) -> Selection:
        """Let the strategy choose among filtered tags; ``skipped`` are the filter's left-outs."""
        dropped: Sequence[Skipped] = ()
        if self.extractor is not None:
            kept, dropped = self.extractor.apply(kept)
        selection = self.strategy.select(kept)
        reason = f"{selection.reason}; {self.note}" if self.note else selection.reason
        # Reasons stay unexplained until read (LazySkips): join the parts without reading them.
        parts = [part for part in (skipped, dropped, selection.skipped) if not isinstance(part, tuple) or part]
        if not parts:
            left_out: Sequence[Skipped] = ()
        elif len(parts) == 1:
            left_out = parts[0]
        else:
            left_out = LazySkips(lambda: tuple(s for part in parts for s in part))
        if left_out is selection.skipped and reason == selection.reason:
            return selection
        return replace(selection, reason=reason, skipped=left_out)


def build_strategy(name: str, constraint: str | None) -> Strategy:
    """The strategy called ``name`` (a canonical name, see :data:`STRATEGY_NAMES`).

    ``constraint`` is the text after the image name in ``image-list``: a version constraint for
    ``semver``, the tracked tag for ``digest``; the other strategies ignore it, as AIU does (the
    selector says so in its reason).
    """
    if name == "semver":
        try:
            return SemverStrategy(constraint)
        except ConstraintError as e:
            raise ConstraintError(f"image-list: {e.message}") from None
    if name == "digest":
        return DigestStrategy(constraint)
    factories = {
        "newest-build": NewestBuildStrategy,
        "alphabetical": AlphabeticalStrategy,
        "numerical": NumericalStrategy,
    }
    factory = factories.get(name)
    if factory is None:
        raise ConstraintError(f"update-strategy {name!r} is unknown (known: {', '.join(STRATEGY_NAMES)})")
    return factory()


def build_selector(image: ImageSpec) -> Selector:
    """Build the selector for an image; bad settings raise naming the image and the annotation."""
    try:
        strategy = build_strategy(image.strategy, image.constraint)
        tag_filter = TagFilter.build(
            image.allow_tags,
            image.ignore_tags,
            only=strategy.tag if isinstance(strategy, DigestStrategy) else None,
        )
        parse_platforms(image.platforms)
        extractor = None
        if image.tag_extract:
            if image.strategy not in _EXTRACTABLE:
                raise ConstraintError(
                    f"{TAG_EXTRACT} has no meaning for update-strategy {image.strategy} "
                    f"(it feeds {', '.join(sorted(_EXTRACTABLE))})"
                )
            extractor = TagExtractor.build(image.tag_extract, tag_filter.allow)
        note = None
        if image.constraint and image.strategy not in ("semver", "digest"):
            note = f"the image-list constraint {image.constraint!r} has no effect on {image.strategy}"
        return Selector(filter=tag_filter, strategy=strategy, extractor=extractor, note=note)
    except ImageUpdaterError as e:
        raise e.with_context(image=image.label) from None
