"""The files source parses a manifest again only when the file changed (the service reads the folder for
every cycle and every webhook; at 1,000 Applications parsing them all took most of a webhook's time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from image_updater.adapters import files

APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  annotations:
    argocd-image-updater.argoproj.io/image-list: web=registry.example/team/{name}:{constraint}
spec:
  source: {{repoURL: "https://git.example/config.git", path: apps/{name}}}
"""


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = files.load_all

    def counting(text: str) -> list[Any]:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(files, "load_all", counting)
    return seen


def test_unchanged_files_are_not_parsed_again_and_changed_ones_are(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "a.yaml").write_text(APP.format(name="a", constraint="~1.0"))
    (tmp_path / "b.yaml").write_text(APP.format(name="b", constraint="~1.0"))
    first = files.discover_files(tmp_path)
    assert [app.name for app in first.apps] == ["a", "b"] and len(parses) == 2

    again = files.discover_files(tmp_path)
    assert again.apps == first.apps and len(parses) == 2

    (tmp_path / "b.yaml").write_text(APP.format(name="b", constraint="~2.0"))
    changed = files.discover_files(tmp_path)
    assert len(parses) == 3
    assert changed.apps[0] == first.apps[0]
    assert changed.apps[1].images[0].constraint == "~2.0"


def test_a_broken_file_is_reported_every_time_and_read_again(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "broken.yaml").write_text("apiVersion: [\n")
    bad = APP.format(name="bad", constraint="~1.0").replace("image-list: web=", "image-list: web=:")
    (tmp_path / "wrong.yaml").write_text(bad)
    for round_ in (1, 2):
        found = files.discover_files(tmp_path)
        assert not found.apps
        assert sorted(Path(p.where).name for p in found.problems) == ["broken.yaml", "wrong.yaml"], round_
    assert len(parses) == 3  # the file that does not parse is read again; the wrong Application is kept
