"""The ``semver`` strategy: the highest semantic version that satisfies the image's constraint.

Tags that are not versions are skipped, never an error. A pre-release counts only when the constraint
names one (Masterminds), and also not when there is no constraint at all: AIU checks tags against a
constraint only when one is given, so there ``nginx`` with no constraint jumps to ``2.0.0-rc.1``; here
it stays on releases, and ``nginx:>=0.0.0-0`` asks for pre-releases too. Ties in precedence (``1.2``
and ``v1.2.0``) are broken by the tag string, so the choice never depends on registry order.
With ``tag-extract`` the version is read from the extracted value (:attr:`TagInfo.key`) and the tag
itself is what gets chosen.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence

from image_updater.selection.base import LazySkips, Selection, Skipped, TagInfo, count, derived
from image_updater.selection.constraints import Constraint
from image_updater.selection.versions import Version, parse_version

__all__ = ["NOT_A_VERSION", "PRERELEASE_NOT_NAMED", "PRERELEASE_NO_CONSTRAINT", "SemverStrategy"]

NOT_A_VERSION = "not a semantic version"
PRERELEASE_NOT_NAMED = "pre-release, and the constraint names none"
PRERELEASE_NO_CONSTRAINT = "pre-release, and there is no constraint that names one"


#: a selection worked out tag by tag: candidates ranked best last, the others with their reasons, and
#: how many tags were not versions, out of range and pre-releases
_Explanation = tuple[list[tuple[Version, str]], list[Skipped], tuple[int, int, int]]


@functools.lru_cache(maxsize=1024)
def _parse_constraint(text: str) -> Constraint:
    """One :class:`Constraint` per text (with what its checks learnt), shared by every image using it."""
    return Constraint.parse(text)


class SemverStrategy:
    """Chooses the highest version satisfying ``constraint``; ``None`` or blank means any version.

    Raises ``ConstraintError`` at construction when the constraint does not parse.
    """

    name = "semver"
    needs_metadata = False

    def __init__(self, constraint: str | None = None) -> None:
        self.constraint: Constraint | None = (
            _parse_constraint(constraint) if constraint is not None and constraint.strip() else None
        )

    def select(self, tags: Sequence[TagInfo]) -> Selection:
        """Rank the versions among ``tags``, best last, and explain every tag left out.

        The versions of a listing are parsed and ranked once (:func:`_ranked`, shared by every image
        selecting from it); a selection only keeps those its constraint admits, and works out why the
        others were left out when that is first asked for.
        """
        ranked = derived(tags, "semver.ranked", lambda: _ranked(tags))
        constraint = self.constraint
        if constraint is None:
            considered = derived(tags, "semver.releases", lambda: tuple(t for v, t in ranked if not v.prerelease))
        else:
            considered = constraint.admitted(ranked)
        explain = LazySkips(lambda: self._explain(tags)[1])
        if considered:
            reason = f"highest of {count(len(considered), 'version')} {self._scope()}"
        else:
            reason = self._nothing(len(tags), *self._left_out(len(tags), ranked))
        return Selection(
            strategy=self.name,
            selected=considered[-1] if considered else None,
            reason=reason,
            considered=considered,
            skipped=explain,
        )

    def _left_out(self, total: int, ranked: Sequence[tuple[Version, str]]) -> tuple[int, int, int]:
        """How many tags were not versions, out of range and pre-releases left out, when ``ranked`` are
        the versions among ``total`` tags."""
        constraint = self.constraint
        prereleases = out_of_range = 0
        for version, _ in ranked:
            if constraint is None:
                prereleases += bool(version.prerelease)
            elif not constraint.check(version):
                if version.prerelease and not constraint.names_prerelease:
                    prereleases += 1
                else:
                    out_of_range += 1
        return total - len(ranked), out_of_range, prereleases

    def _explained(self, tags: Sequence[TagInfo]) -> Selection:
        """The selection with every count and reason worked out (nothing was admitted: the reason says
        why, in numbers)."""
        candidates, skipped, (not_versions, out_of_range, prereleases) = self._explain(tags)
        considered = tuple(tag for _, tag in candidates)
        if considered:
            reason = f"highest of {count(len(considered), 'version')} {self._scope()}"
        else:
            reason = self._nothing(len(tags), not_versions, out_of_range, prereleases)
        return Selection(
            strategy=self.name,
            selected=considered[-1] if considered else None,
            reason=reason,
            considered=considered,
            skipped=tuple(skipped),
        )

    def _explain(self, tags: Sequence[TagInfo]) -> _Explanation:
        """Every tag in listing order: the candidates ranked best last, the others with their reasons,
        and how many were not versions, out of range and pre-releases."""
        candidates: list[tuple[Version, str]] = []
        skipped: list[Skipped] = []
        not_versions = out_of_range = prereleases = 0
        constraint = self.constraint
        check = constraint.check if constraint is not None else None
        names_prerelease = constraint is not None and constraint.names_prerelease
        outside = f"does not satisfy {constraint}"
        for info in tags:
            version = parse_version(info.key)
            if version is None:
                not_versions += 1
                skipped.append(Skipped(info.tag, NOT_A_VERSION))
            elif check is None:
                if version.prerelease:
                    prereleases += 1
                    skipped.append(Skipped(info.tag, PRERELEASE_NO_CONSTRAINT))
                else:
                    candidates.append((version, info.tag))
            elif check(version):
                candidates.append((version, info.tag))
            elif version.prerelease and not names_prerelease:
                prereleases += 1
                skipped.append(Skipped(info.tag, PRERELEASE_NOT_NAMED))
            else:
                out_of_range += 1
                skipped.append(Skipped(info.tag, outside))
        candidates.sort(key=_rank_key)
        return candidates, skipped, (not_versions, out_of_range, prereleases)

    def would_downgrade(self, current: str, selected: str) -> bool:
        """True when ``current`` still satisfies the constraint and ranks above ``selected``.

        That happens when the running tag is missing from the listing (deleted, or the registry
        answered partially): we never move backwards for that. With no constraint, any running version
        counts, a pre-release put there by hand included.
        """
        now, chosen = parse_version(current), parse_version(selected)
        if now is None or chosen is None:
            return False
        if self.constraint is not None and not self.constraint.check(now):
            return False
        return now.compare_precedence(chosen) > 0

    def _scope(self) -> str:
        if self.constraint is None:
            return "(no constraint; pre-releases left out)"
        return f"satisfying {self.constraint}"

    def _nothing(self, total: int, not_versions: int, out_of_range: int, prereleases: int) -> str:
        if total == 0:
            return "no tags to choose from"
        if self.constraint is None and not prereleases:
            return f"no tag is a semantic version ({count(total, 'tag')})"
        causes = (
            (not_versions, "not a semantic version", "not semantic versions"),
            (out_of_range, "out of range", "out of range"),
            (prereleases, "pre-release", "pre-releases"),
        )
        detail = ", ".join(count(n, one, many) for n, one, many in causes if n)
        if self.constraint is None:
            return f"no release version, and no constraint admits pre-releases ({count(total, 'tag')}: {detail})"
        return f"no tag satisfies {self.constraint} ({count(total, 'tag')}: {detail})"

    def __repr__(self) -> str:
        return f"SemverStrategy({str(self.constraint) if self.constraint else None!r})"


def _rank_key(pair: tuple[Version, str]) -> tuple[object, str]:
    # Equal precedence breaks by the compared text, then by the tag (two tags may extract the same value).
    return (pair[0].sort_key(), pair[1])


_FIRST_TWO = operator.itemgetter(0, 1)


def _ranked(tags: Sequence[TagInfo]) -> tuple[tuple[Version, str], ...]:
    """Every tag that reads as a version (its :attr:`~TagInfo.key`), with its tag, ranked best last
    (as :func:`_rank_key` orders them; the sort key is built once per tag)."""
    keyed = []
    for info in tags:
        version = parse_version(info.key)
        if version is not None:
            keyed.append((version.sort_key(), info.tag, version))
    keyed.sort(key=_FIRST_TWO)
    return tuple((version, tag) for _, tag, version in keyed)
