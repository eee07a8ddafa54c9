"""Tag patterns written for Go, read in Python: RE2 regular expressions and ``filepath.Match`` globs.

AIU compiles ``allow-tags`` with Go's ``regexp`` (RE2) and matches ``ignore-tags`` with Go's
``filepath.Match``. Python's ``re`` and ``fnmatch`` read some of the same text differently, so patterns
are translated here before they are compiled:

- RE2's POSIX classes (``[[:digit:]]``) mean nothing to ``re`` (it reads a set of the characters
  ``[:digt`` and warns); they become explicit ASCII ranges. ``(?<name>...)`` becomes ``(?P<name>...)``,
  ``\\z`` becomes ``\\Z`` and ``\\Q...\\E`` is quoted. ``\\d``, ``\\w`` and ``\\s`` stay ASCII-only (``re.ASCII``)
  as in RE2.
- In a Go glob ``[^a]`` negates and ``[!a]`` is the two characters ``!`` and ``a`` (``fnmatch`` reads
  both the other way round); ``\\`` escapes the next character; a class that is unclosed, empty or starts
  with ``-`` is malformed. Malformed globs are an error here, where Go would quietly match nothing.

Anything ``re`` rejects is a :class:`~image_updater.errors.ConstraintError`; nothing else escapes.
"""

from __future__ import annotations

import re

from image_updater.errors import ConstraintError

__all__ = ["compile_glob", "compile_regexp"]

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_POSIX = re.compile(r"\[:(\^?)([a-z]+):\]")
_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")


def compile_regexp(text: str, *, what: str) -> re.Pattern[str]:
    """Compile an RE2-style regular expression; ``what`` names the setting in errors."""
    try:
        return re.compile(_translate_regexp(text, what), re.ASCII)
    except re.error as e:
        raise ConstraintError(f"{what}: {text!r} is not a valid regular expression: {e}") from e
    except (RecursionError, OverflowError) as e:
        raise ConstraintError(f"{what}: {text!r} is too complex a regular expression") from e


def _translate_regexp(text: str, what: str) -> str:
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            pair = text[i : i + 2]
            if pair == "\\Q":
                end = text.find("\\E", i + 2)
                literal = text[i + 2 :] if end < 0 else text[i + 2 : end]
                out.append(re.escape(literal))
                i = len(text) if end < 0 else end + 2
                continue
            out.append("\\Z" if pair == "\\z" and not in_class else pair)
            i += 2
            continue
        if in_class:
            posix = _POSIX.match(text, i)
            if posix:
                if posix.group(1) or posix.group(2) not in _POSIX_CLASSES:
                    raise ConstraintError(f"{what}: {text!r}: unsupported character class {posix.group(0)!r}")
                out.append(_POSIX_CLASSES[posix.group(2)])
                i = posix.end()
                continue
            if char == "]":
                in_class = False
            elif char == "[":
                char = "\\["  # a literal [ inside a class, as RE2 reads it
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            out.append(char)
            i += 1
            # a leading ^ and a ] right after [ (or [^) belong to the class, not its end
            if text.startswith("^", i):
                out.append("^")
                i += 1
            if text.startswith("]", i):
                out.append("\\]")
                i += 1
            continue
        if _NAMED_GROUP.match(text, i):
            out.append("(?P<")
            i += 3
            continue
        out.append(char)
        i += 1
    return "".join(out)


def compile_glob(pattern: str, *, what: str) -> re.Pattern[str]:
    """Compile a Go ``filepath.Match`` glob to a regular expression matching the whole tag."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise ConstraintError(f"{what}: glob {pattern!r} ends with a lone backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif char == "[":
            text, i = _glob_class(pattern, i + 1, what)
            out.append(text)
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _glob_class(pattern: str, i: int, what: str) -> tuple[str, int]:
    """Translate a ``[...]`` class starting after its ``[``; return the regex and the index after ``]``."""
    negated = pattern.startswith("^", i)
    if negated:
        i += 1
    items: list[str] = []
    while True:
        if i >= len(pattern):
            raise ConstraintError(f"{what}: glob {pattern!r} has an unclosed '['")
        if pattern[i] == "]" and items:
            i += 1
            break
        low, i = _glob_class_char(pattern, i, what)
        if pattern.startswith("-", i):
            high, i = _glob_class_char(pattern, i + 1, what)
            if high < low:
                raise ConstraintError(f"{what}: glob {pattern!r} has the empty range {low}-{high}")
            items.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            items.append(re.escape(low))
    body = "".join(items)
    # Go's classes never match the path separator, negated or not.
    return (f"[^/{body}]" if negated else f"(?!/)[{body}]"), i


def _glob_class_char(pattern: str, i: int, what: str) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise ConstraintError(f"{what}: glob {pattern!r} has a malformed character class")
    if pattern[i] == "\\":
        if i + 1 >= len(pattern):
            raise ConstraintError(f"{what}: glob {pattern!r} ends with a lone backslash")
        return pattern[i + 1], i + 2
    return pattern[i], i + 1
