"""Version constraints with the grammar and meaning of Masterminds/semver v3 ``NewConstraint``.

Grammar (what Argo CD Image Updater accepts after ``image:``):

- ``||`` separates OR groups; inside a group, comparators are separated by whitespace or a comma;
- a hyphen range ``A - B`` (spaces required) is rewritten to ``>= A, <= B`` before anything else;
- a comparator is an operator (``=``, ``!=``, ``>``, ``<``, ``>=``, ``=>``, ``<=``, ``=<``, ``~``,
  ``~>``, ``^`` or none) and a version whose parts may be wildcards ``x``, ``X`` or ``*``; a missing
  part is a wildcard too, so ``1.2`` means ``1.2.x`` while ``1.2.3`` pins one version.

Meaning, as the library computes it (see each ``_Comparator`` method):

- no operator or ``=``: exact for a full version, else a tilde range (``1.2`` is ``>=1.2.0 <1.3.0``);
- ``~1.2.3`` is ``>=1.2.3 <1.3.0``; ``~1`` and ``~1.x`` are ``>=1.0.0 <2.0.0``; ``~0.0.0`` is anything;
- ``^1.2.3`` is ``>=1.2.3 <2.0.0``; ``^0.2.3`` is ``>=0.2.3 <0.3.0``; ``^0.0.3`` is exactly ``0.0.3``;
  ``^0.0`` is ``<0.1.0``; ``^0`` is ``<1.0.0``;
- ``>1.x`` means ``>=2.0.0``, ``>1.2`` means ``>=1.3.0``, ``<=1.2`` means ``<1.3.0`` (a wildcard widens);
- a pre-release version satisfies an OR group only when some comparator of that group names a
  pre-release (Masterminds v3.4+: ``IncludePrerelease`` false, per-group ``containsPre``); it is then
  compared by plain precedence, across patch versions too (``^1.2.0-0`` admits ``1.5.0-rc.1``).

Masterminds' limits are kept: at most 512 bytes and 32 OR groups. Any rejected text raises
``ConstraintError`` naming the text and the reason; nothing else escapes ``Constraint.parse``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import semver

from image_updater.errors import ConstraintError
from image_updater.selection.versions import Version, parse_version

__all__ = ["MAX_CONSTRAINT_GROUPS", "MAX_CONSTRAINT_LENGTH", "Constraint"]

MAX_CONSTRAINT_LENGTH = 512
MAX_CONSTRAINT_GROUPS = 32

# Go's `\s` is ASCII only; Python's would also take \v and Unicode spaces.
_WS = " \t\n\f\r"
# The library's version-part character class is `[0-9|x|X|\*]`: the `|` is a literal, kept for fidelity.
_SEGMENT_CHARS = frozenset("0123456789xX*|")
_IDENT_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_WILDCARDS = frozenset({"x", "X", "*"})
# Tried in the library's order; the first operator after which a valid version follows wins.
_OPERATORS = ("=", "", "!=", ">", "<", ">=", "=>", "<=", "=<", "~", "~>", "^")
_CANONICAL = {"": "=", "=>": ">=", "=<": "<=", "~>": "~"}

_CV = (
    r"v?([0-9|xX*]+)(\.[0-9|xX*]+)?(\.[0-9|xX*]+)?"
    r"(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?"
)
_RANGE = re.compile(rf"[{_WS}]*({_CV})[{_WS}]+-[{_WS}]+({_CV})[{_WS}]*")


@dataclass(frozen=True)
class _Atom:
    """One comparator as written: operator and the version text split into its parts."""

    operator: str
    version: str
    major: str
    minor: str  # with its leading "." or empty
    patch: str  # with its leading "." or empty
    prerelease: str  # with its leading "-" or empty


@dataclass(frozen=True)
class _Comparator:
    """A parsed comparator: the bound as a version, and which parts were wildcards ("dirty")."""

    operator: str  # canonical: = != > < >= <= ~ ^
    text: str
    bound: Version
    dirty: bool
    minor_dirty: bool
    patch_dirty: bool

    def matches(self, v: Version, include_prerelease: bool) -> bool:
        """Whether ``v`` satisfies this comparator; ``include_prerelease`` is decided per OR group."""
        if v.is_prerelease and not include_prerelease:
            return False
        return _PREDICATES[self.operator](self, v)

    def _cmp(self, v: Version) -> int:
        return v.compare_precedence(self.bound)

    def _equal(self, v: Version) -> bool:
        if self.dirty:
            return self._tilde(v)
        return self._cmp(v) == 0

    def _not_equal(self, v: Version) -> bool:
        b = self.bound
        if self.dirty:
            if b.major != v.major:
                return True
            if b.minor != v.minor and not self.minor_dirty:
                return True
            if self.minor_dirty:
                return False
            if b.patch != v.patch and not self.patch_dirty:
                return True
            if self.patch_dirty:
                # The library compares only the pre-release strings here, not the patch.
                return bool(v.prerelease or b.prerelease) and _prerelease_differs(v.prerelease, b.prerelease)
        return self._cmp(v) != 0

    def _greater(self, v: Version) -> bool:
        b = self.bound
        if not self.dirty:
            return self._cmp(v) > 0
        if v.major != b.major:
            return v.major > b.major
        if self.minor_dirty:  # >1.x: nothing in 1.x is greater
            return False
        if self.patch_dirty:  # >1.2: nothing in 1.2.x is greater
            return v.minor > b.minor
        return self._cmp(v) > 0

    def _less(self, v: Version) -> bool:
        return self._cmp(v) < 0

    def _greater_equal(self, v: Version) -> bool:
        return self._cmp(v) >= 0

    def _less_equal(self, v: Version) -> bool:
        b = self.bound
        if not self.dirty:
            return self._cmp(v) <= 0
        if v.major > b.major:
            return False
        return not (v.major == b.major and v.minor > b.minor and not self.minor_dirty)

    def _tilde(self, v: Version) -> bool:
        b = self.bound
        if self._cmp(v) < 0:
            return False
        if (b.major, b.minor, b.patch) == (0, 0, 0) and not self.minor_dirty and not self.patch_dirty:
            return True  # ~0.0.0 and ~* accept everything
        if v.major != b.major:
            return False
        return v.minor == b.minor or self.minor_dirty

    def _caret(self, v: Version) -> bool:
        b = self.bound
        if self._cmp(v) < 0:
            return False
        if b.major > 0 or self.minor_dirty:
            return v.major == b.major
        if v.major > 0:
            return False
        if b.minor > 0 or self.patch_dirty:
            return v.minor == b.minor
        if v.minor > 0:
            return False
        # ^0.0.z is exactly 0.0.z. A wildcard major (^*) also lands here and so means 0.0.0: this is
        # what the library's code does, although its comment says "any".
        return v.patch == b.patch


_PREDICATES = {
    "=": _Comparator._equal,
    "!=": _Comparator._not_equal,
    ">": _Comparator._greater,
    "<": _Comparator._less,
    ">=": _Comparator._greater_equal,
    "<=": _Comparator._less_equal,
    "~": _Comparator._tilde,
    "^": _Comparator._caret,
}


_SEEN_SIZE = 8192


class Constraint:
    """A parsed constraint: OR groups of AND-ed comparators. Build it with ``Constraint.parse``."""

    __slots__ = ("_groups", "_seen", "_text")

    def __init__(self, text: str, groups: Sequence[Sequence[_Comparator]]) -> None:
        self._text = text
        # each group with whether it admits pre-releases, decided once (checks run for every tag)
        self._groups = tuple((tuple(group), _group_names_prerelease(group)) for group in groups)
        #: answers so far, by precedence key (all a check reads of a version); bounded
        self._seen: dict[tuple[object, ...], bool] = {}

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse ``text``; raises ``ConstraintError`` naming the text and why it is not a constraint."""
        if not isinstance(text, str):
            raise ConstraintError(f"constraint must be text, not {type(text).__name__}")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise ConstraintError(f"invalid constraint {text!r}: not valid text") from None
        if size > MAX_CONSTRAINT_LENGTH:
            raise ConstraintError(f"invalid constraint {text[:40]!r}...: longer than {MAX_CONSTRAINT_LENGTH} bytes")
        if not text.strip(_WS):
            raise ConstraintError(f"invalid constraint {text!r}: empty")
        ors = _rewrite_ranges(text).split("||")
        if len(ors) > MAX_CONSTRAINT_GROUPS:
            raise ConstraintError(
                f"invalid constraint {text!r}: more than {MAX_CONSTRAINT_GROUPS} groups joined by '||'"
            )
        groups = []
        for group in ors:
            atoms = _split_group(group)
            if atoms is None:
                raise ConstraintError(f"invalid constraint {text!r}: cannot read {group.strip(_WS)!r}")
            groups.append([_comparator(text, atom) for atom in atoms])
        return cls(text, groups)

    @property
    def names_prerelease(self) -> bool:
        """Whether some comparator names a pre-release, so that pre-release versions can satisfy it."""
        return any(include for _, include in self._groups)

    def check(self, version: Version) -> bool:
        """Whether ``version`` satisfies some OR group (every comparator of that group).

        Answers are remembered: one constraint is checked against the same tags by every image that
        uses it, cycle after cycle.
        """
        key = version.precedence_key
        known = self._seen.get(key)
        if known is None:
            known = self._check(version)
            if len(self._seen) >= _SEEN_SIZE:
                self._seen.clear()
            self._seen[key] = known
        return known

    def admitted(self, ranked: Sequence[tuple[Version, str]]) -> tuple[str, ...]:
        """The tags of ``ranked`` (version, tag pairs) whose version satisfies this constraint, in order:
        :meth:`check` for each, in one loop (a cycle filters the ranked tags of a repository for every
        constraint an image of it has)."""
        seen = self._seen
        admitted = []
        for version, tag in ranked:
            known = seen.get(version.precedence_key)
            if known is None:
                known = self.check(version)
            if known:
                admitted.append(tag)
        return tuple(admitted)

    def _check(self, version: Version) -> bool:
        prerelease = bool(version.prerelease)
        for group, include in self._groups:
            if group and prerelease and not include:
                continue
            for comparator in group:
                if not _PREDICATES[comparator.operator](comparator, version):
                    break
            else:
                return True
        return False

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Constraint.parse({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Constraint) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)


def _group_names_prerelease(group: Sequence[_Comparator]) -> bool:
    return any(comparator.bound.is_prerelease for comparator in group)


def _prerelease_differs(a: str, b: str) -> bool:
    return semver.Version(0, 0, 0, a or None).compare(semver.Version(0, 0, 0, b or None)) != 0


def _rewrite_ranges(text: str) -> str:
    """``A - B`` becomes ``>= A, <= B `` (Masterminds ``rewriteRange``, replacing first occurrences)."""
    if "-" not in text:
        return text
    out = text
    for match in _RANGE.finditer(text):
        out = out.replace(match[0], f">= {match[1]}, <= {match[11]} ", 1)
    return out


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def _scan_segment(s: str, i: int) -> int:
    while i < len(s) and s[i] in _SEGMENT_CHARS:
        i += 1
    return i


def _scan_identifiers(s: str, i: int) -> int:
    """End of the dot-separated identifiers starting at ``i`` (``i`` itself when there are none)."""
    start = i
    while i < len(s) and s[i] in _IDENT_CHARS:
        i += 1
    if i == start:
        return start
    while i < len(s) and s[i] == ".":
        k = i + 1
        while k < len(s) and s[k] in _IDENT_CHARS:
            k += 1
        if k == i + 1:
            break
        i = k
    return i


def _scan_version(s: str, i: int) -> tuple[int, list[str]] | None:
    """Scan a constraint version at ``i``: its end and its parts (major, .minor, .patch, -pre)."""
    if i < len(s) and s[i] == "v":
        i += 1
    if i >= len(s) or s[i] not in _SEGMENT_CHARS:
        return None
    parts = ["", "", "", ""]
    end = _scan_segment(s, i)
    parts[0], i = s[i:end], end
    for slot in (1, 2):
        if i < len(s) and s[i] == ".":
            if i + 1 >= len(s) or s[i + 1] not in _SEGMENT_CHARS:
                return None
            end = _scan_segment(s, i + 1)
            parts[slot], i = s[i:end], end
    if i < len(s) and s[i] == "-":
        end = _scan_identifiers(s, i + 1)
        if end == i + 1:
            return None
        parts[3], i = s[i:end], end
    if i < len(s) and s[i] == "+":
        end = _scan_identifiers(s, i + 1)
        if end == i + 1:
            return None
        i = end
    return i, parts


def _match_atom(s: str, start: int) -> tuple[int, _Atom] | None:
    """The comparator starting at ``start`` (after optional whitespace), and where it ends."""
    i = _skip_ws(s, start)
    for operator in _OPERATORS:
        if not s.startswith(operator, i):
            continue
        j = _skip_ws(s, i + len(operator))
        scanned = _scan_version(s, j)
        if scanned is not None:
            end, (major, minor, patch, pre) = scanned
            return end, _Atom(operator, s[j:end], major, minor, patch, pre)
    return None


def _split_group(group: str) -> list[_Atom] | None:
    """Comparators of one OR group, separated by whitespace or one comma; ``None`` when malformed."""
    first = _match_atom(group, 0)
    if first is None:
        return None
    rest, atom = first
    atoms = [atom]
    while rest < len(group):
        q = _skip_ws(group, rest)
        if q == len(group):
            break
        if group[q] == ",":
            q += 1
        elif q == rest:  # two comparators with nothing between them
            return None
        found = _match_atom(group, q)
        if found is None:
            return None
        rest, atom = found
        atoms.append(atom)
    return atoms


def _comparator(text: str, atom: _Atom) -> _Comparator:
    """Turn an atom into a comparator; wildcard or missing parts become 0 and mark the bound dirty."""
    minor_dirty = patch_dirty = dirty = False
    if atom.major in _WILDCARDS:
        bound_text, dirty = "0.0.0" + atom.prerelease, True
    elif atom.minor == "" or atom.minor[1:] in _WILDCARDS:
        bound_text, dirty, minor_dirty = f"{atom.major}.0.0{atom.prerelease}", True, True
    elif atom.patch == "" or atom.patch[1:] in _WILDCARDS:
        bound_text, dirty, patch_dirty = f"{atom.major}{atom.minor}.0{atom.prerelease}", True, True
    else:
        bound_text = atom.version
    bound = parse_version(bound_text)
    if bound is None:
        raise ConstraintError(f"invalid constraint {text!r}: {atom.version!r} is not a version or wildcard")
    operator = _CANONICAL.get(atom.operator, atom.operator)
    return _Comparator(operator, atom.operator + atom.version, bound, dirty, minor_dirty, patch_dirty)
