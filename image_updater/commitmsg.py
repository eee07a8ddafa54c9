"""Commit messages rendered from a template and the changes an update made.

Variables, in the ``{{ name }}`` form and in AIU's Go-template form ``{{ .AppName }}``:
``app_name`` / ``.AppName`` (the Application names, comma-separated), ``changes`` (one
``- image: old -> new`` line per change), ``change_count``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from image_updater.model.changes import Change

_VAR = re.compile(r"\{\{\s*\.?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ALIASES = {"AppName": "app_name", "Changes": "changes", "ChangeCount": "change_count"}


def render_commit_message(template: str, app_names: Sequence[str], changes: Sequence[Change]) -> str:
    """Render ``template``; unknown variables are left as written so a typo shows in the commit."""
    unique = list(dict.fromkeys(c.describe() for c in changes))
    values = {
        "app_name": ", ".join(dict.fromkeys(app_names)),
        "changes": "\n".join(f"- {line}" for line in unique),
        "change_count": str(len(unique)),
    }

    def substitute(match: re.Match[str]) -> str:
        name = _ALIASES.get(match.group(1), match.group(1))
        return values.get(name, match.group(0))

    message = _VAR.sub(substitute, template).strip("\n") + "\n"
    if values["changes"] not in message:
        # every commit lists what it changed, whatever the template says
        message = message.rstrip("\n") + "\n\n" + values["changes"] + "\n"
    return message
