"""Current tags are read from memory when the same text was read for the same image before (a service
reads its unchanged target files every cycle); a changed text is read again, and errors never stick."""

from __future__ import annotations

import pytest

from image_updater import planner
from image_updater.errors import EditError
from image_updater.planner import current_tag, resolve_target
from tests.integration.writeback_kit import make_app

KUSTOMIZATION = "images:\n  - name: registry.example/team/web\n    newTag: {tag}\n"


class Files:
    def __init__(self, text: str) -> None:
        self.text = text

    def read(self, relative: str) -> str | None:
        return self.text if relative == "app/kustomization.yaml" else None

    def list_files(self, relative: str) -> list[str]:
        return ["app/kustomization.yaml"]


def test_the_same_text_is_not_composed_again_and_a_changed_one_is(monkeypatch: pytest.MonkeyPatch) -> None:
    composed: list[str] = []
    real = planner.read_kustomization_tag

    def counting(text: str, *args: object, **kwargs: object) -> str | None:
        composed.append(text)
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(planner, "read_kustomization_tag", counting)
    app = make_app("memo", "https://git.example/c.git", "app", "w=registry.example/team/web", target="kustomization")
    files = Files(KUSTOMIZATION.format(tag="1.0.7"))
    target = resolve_target(app, files)
    image = app.images[0]
    assert [current_tag(app, image, files, target) for _ in range(3)] == ["1.0.7"] * 3
    assert len(composed) == 1
    files.text = KUSTOMIZATION.format(tag="1.0.8")
    assert current_tag(app, image, files, target) == "1.0.8"
    assert len(composed) == 2


def test_a_file_that_does_not_parse_fails_every_time() -> None:
    app = make_app("bad", "https://git.example/c.git", "app", "w=registry.example/team/web", target="kustomization")
    files = Files("images:\n  - name: registry.example/team/web\n    newTag: [\n")
    target = resolve_target(app, files)
    for _ in range(2):
        with pytest.raises(EditError, match="not valid YAML"):
            current_tag(app, app.images[0], files, target)
