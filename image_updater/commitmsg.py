"""Commit messages and branch names rendered from templates and the changes an update made.

Templates take AIU's Go-template forms and a plain ``{{ name }}`` form:

- ``{{ .Var }}`` / ``{{ var }}``: a value; ``{{ range .List }}...{{ end }}``: the body once per item, in
  which ``{{ .Field }}`` is a field of the item; ``{{-`` and ``-}}`` trim the white space before and after,
  as Go does.
- Commit messages: ``app_name`` / ``.AppName`` (the Application names, comma-separated), ``changes`` /
  ``.Changes`` (one ``- image: old -> new`` line per change), ``change_count`` / ``.ChangeCount``, and
  ``.AppChanges`` (items with ``.Image``, ``.OldTag``, ``.NewTag``). An unknown variable is left as
  written, so that a typo shows in the commit; a message whose template names neither ``changes`` nor
  ``.AppChanges`` gets the list of changes appended: every commit says what it changed.
- Branch names (``git-branch: base:target``): ``.SHA256`` (AIU's hash of the changes: sha256 over
  ``name-old-new,`` per change, hex), ``.Images`` (items with ``.Name``, ``.Alias``, ``.OldTag``,
  ``.NewTag``), ``app_name`` / ``.AppName``. An unknown variable is an error; characters Git refuses in a
  branch name become ``-``, and the name is cut at 255 characters, as AIU cuts it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from image_updater.errors import WriteBackError
from image_updater.model.changes import Change

_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.S)
_NAME = re.compile(r"^\.?([A-Za-z_][A-Za-z0-9_]*)$")
_RANGE = re.compile(r"^range\s+\.?([A-Za-z_][A-Za-z0-9_]*)$")
_ALIASES = {"AppName": "app_name", "Changes": "changes", "ChangeCount": "change_count"}
_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]+")
MAX_BRANCH_LENGTH = 255

Value = str | Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class ImageChange:
    """One image's change, as branch-name templates see it."""

    name: str
    alias: str
    old: str
    new: str


# -- the template language ----------------------------------------------------------------------------


@dataclass
class _Var:
    name: str
    raw: str


@dataclass
class _Range:
    name: str
    raw: str
    body: list[str | _Var | _Range] = field(default_factory=list)


def _parse(template: str) -> list[str | _Var | _Range]:
    """Text and actions, with ``{{-``/``-}}`` trimming applied to the text around them."""
    root: list[str | _Var | _Range] = []
    stack = [root]
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if text:
            stack[-1].append(text)
        trim_next = bool(match.group(3))
        pos = match.end()
        action = match.group(2)
        if action == "end" and len(stack) > 1:
            stack.pop()
            continue
        ranged = _RANGE.match(action)
        if ranged:
            node = _Range(ranged.group(1), match.group(0))
            stack[-1].append(node)
            stack.append(node.body)
            continue
        named = _NAME.match(action)
        stack[-1].append(_Var(named.group(1) if named else "", match.group(0)))
    rest = template[pos:]
    if trim_next:
        rest = rest.lstrip()
    if rest:
        stack[-1].append(rest)
    return root


def _lookup(name: str, scopes: Sequence[Mapping[str, Value]]) -> Value | None:
    for scope in reversed(scopes):
        for key in (name, _ALIASES.get(name, name)):
            if key in scope:
                return scope[key]
    return None


def _render(
    nodes: Sequence[str | _Var | _Range], scopes: list[Mapping[str, Value]], unknown: list[str]
) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        value = _lookup(node.name, scopes) if node.name else None
        if isinstance(node, _Range):
            if value is None or isinstance(value, str):
                unknown.append(node.raw)
                continue
            for item in value:
                out.append(_render(node.body, [*scopes, item], unknown))
        elif isinstance(value, str):
            out.append(value)
        else:
            unknown.append(node.raw)
            out.append(node.raw)
    return "".join(out)


def render_template(template: str, values: Mapping[str, Value]) -> tuple[str, list[str]]:
    """``template`` rendered with ``values``; also the actions it could not render."""
    unknown: list[str] = []
    return _render(_parse(template), [values], unknown), unknown


# -- commit messages ----------------------------------------------------------------------------------


def render_commit_message(template: str, app_names: Sequence[str], changes: Sequence[Change]) -> str:
    """Render a commit message; see the module docstring."""
    unique = list(dict.fromkeys(c.describe() for c in changes))
    listed = "\n".join(f"- {line}" for line in unique)
    distinct = dict.fromkeys((c.image, c.old or "", c.new) for c in changes)
    app_changes = [{"Image": image, "OldTag": old, "NewTag": new} for image, old, new in distinct]
    values: dict[str, Value] = {
        "app_name": ", ".join(dict.fromkeys(app_names)),
        "changes": listed,
        "change_count": str(len(unique)),
        "AppChanges": app_changes,
    }
    message, _ = render_template(template, values)
    message = message.strip("\n") + "\n"
    if not re.search(r"\{\{-?\s*(?:\.?[Cc]hanges|range\s+\.?AppChanges)\b", template):
        # every commit lists what it changed, whatever the template says
        message = message.rstrip("\n") + "\n\n" + listed + "\n"
    return message


# -- branch names -------------------------------------------------------------------------------------


def changes_sha256(changes: Sequence[ImageChange]) -> str:
    """AIU's ``.SHA256`` of a set of changes (the same changes give the same branch)."""
    digest = hashlib.sha256()
    for change in changes:
        digest.update(f"{change.name}-{change.old}-{change.new},".encode())
    return digest.hexdigest()


def _branch_values(changes: Sequence[ImageChange], app_names: Sequence[str]) -> dict[str, Value]:
    return {
        "SHA256": changes_sha256(changes),
        "Images": [{"Name": c.name, "Alias": c.alias, "OldTag": c.old, "NewTag": c.new} for c in changes],
        "app_name": ", ".join(dict.fromkeys(app_names)),
    }


#: sample values to check a branch template with before any change exists
BRANCH_TEMPLATE_VALUES = _branch_values([ImageChange("image", "alias", "1.0", "1.1")], ["app"])


def render_branch_name(template: str, changes: Sequence[ImageChange], *, app_names: Sequence[str] = ()) -> str:
    """The branch a templated ``git-branch`` target names for ``changes``; a valid Git branch name.

    Raises :class:`WriteBackError` for an unknown variable or a name that comes out empty.
    """
    values = _branch_values(changes, app_names)
    rendered, unknown = render_template(template, values)
    if unknown:
        raise WriteBackError(f"git-branch template {template!r}: unknown {', '.join(unknown)}")
    name = sanitize_branch_name(rendered)
    if not name:
        raise WriteBackError(f"git-branch template {template!r} gives an empty branch name")
    return name


def sanitize_branch_name(text: str) -> str:
    """``text`` made a valid Git branch name (``git check-ref-format`` rules), at most 255 characters."""
    name = _REF_BAD.sub("-", text.strip()).replace("@{", "-{")
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"/{2,}", "/", name)
    parts = []
    for part in name.split("/"):
        part = part.lstrip(".")
        while part.endswith((".lock", ".")):
            part = part.removesuffix(".lock").rstrip(".")
        if part:
            parts.append(part)
    name = "/".join(parts)[:MAX_BRANCH_LENGTH].rstrip("/.")
    return "" if name == "@" else name
