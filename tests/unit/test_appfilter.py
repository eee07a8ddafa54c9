"""Name globs and label selectors choose which Applications a run processes."""

from __future__ import annotations

import pytest

from image_updater.appfilter import build_filter
from image_updater.errors import ConfigError


@pytest.mark.parametrize(
    ("names", "selector", "name", "labels", "expected"),
    [
        ((), "", "any", {}, True),
        (("web-*",), "", "web-prod", {}, True),
        (("web-*",), "", "api", {}, False),
        ((), "team=web", "a", {"team": "web"}, True),
        ((), "team=web", "a", {"team": "db"}, False),
        ((), "team=web,tier!=db", "a", {"team": "web", "tier": "db"}, False),
        ((), "tier", "a", {"tier": "x"}, True),
        ((), "!tier", "a", {"tier": "x"}, False),
        ((), "env in (prod, stage)", "a", {"env": "stage"}, True),
        ((), "env notin (prod)", "a", {"env": "prod"}, False),
    ],
)
def test_filter(
    names: tuple[str, ...], selector: str, name: str, labels: dict[str, str], expected: bool
) -> None:
    assert build_filter(names, selector).matches(name, labels) is expected


def test_bad_selector() -> None:
    with pytest.raises(ConfigError, match="invalid label selector"):
        build_filter((), "=web")
