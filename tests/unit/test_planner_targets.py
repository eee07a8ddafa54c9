"""Which files a write-back edits for each target, what they hold now, and which paths are refused."""

from __future__ import annotations

import pytest

from image_updater.edit.argocd_source import SourceKind
from image_updater.errors import EditError, WriteBackError
from image_updater.model.spec import TargetKind
from image_updater.planner import current_tag, plan_edits, resolve_target, target_dir, unified_diff
from tests.integration.writeback_kit import make_app

URL = "https://git.example.com/config.git"


class Tree:
    """A repository as a dict of files."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read(self, relative: str) -> str | None:
        return self.files.get(relative.lstrip("/"))

    def list_files(self, relative: str) -> list[str]:
        prefix = "" if relative in (".", "") else relative.rstrip("/") + "/"
        return sorted(f for f in self.files if f == relative or f.startswith(prefix))


@pytest.mark.parametrize(
    ("path", "target", "expected"),
    [
        ("apps/web", None, "apps/web"),
        ("apps/web", "kustomization", "apps/web"),
        ("apps/web", "kustomization:../base", "apps/base"),
        ("apps/web", "kustomization:/shared/base", "shared/base"),
        ("apps/web", "helmvalues", "apps/web/values.yaml"),
        ("apps/web", "helmvalues:/env/prod.yaml", "env/prod.yaml"),
        ("/apps/web/", "manifests:./deploy", "apps/web/deploy"),
        (".", "manifests:/", "."),
    ],
)
def test_target_paths_follow_aiu(path: str, target: str | None, expected: str) -> None:
    assert target_dir(make_app("web", URL, path, "nginx", target=target)) == expected


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("apps/web", "kustomization:../../.."),
        ("apps", "manifests:/../x"),
        ("..", "kustomization"),
        ("apps/web", "helmvalues:/.git/config"),
        (".git", "manifests"),
        ("apps/web", "kustomization:sub/.git/hooks"),
    ],
)
def test_paths_out_of_the_repository_or_into_git_are_refused(path: str, target: str) -> None:
    with pytest.raises(WriteBackError, match=r"leads (outside the repository|into the \.git folder)"):
        resolve_target(make_app("web", URL, path, "nginx", target=target), Tree({}))


def test_the_default_target_and_its_kind() -> None:
    tree = Tree({"k/kustomization.yml": "", "c/Chart.yaml": "name: c\n", "p/x.yaml": ""})
    web = resolve_target(make_app("web", URL, "k", "nginx"), tree)
    assert web == resolve_target(make_app("web", URL, "k", "nginx"), tree, controller_namespace="argocd")
    assert (web.kind, web.files, web.source_kind) == (
        TargetKind.ARGOCD_SOURCE,
        ("k/.argocd-source-web.yaml",),
        SourceKind.KUSTOMIZE,
    )
    chart = resolve_target(make_app("api", URL, "c", "nginx", namespace="team"), tree)
    assert chart.files == ("c/.argocd-source-team_api.yaml",) and chart.source_kind is SourceKind.HELM
    declared = resolve_target(make_app("x", URL, "p", "nginx", status={"sourceType": "Helm"}), tree)
    assert declared.source_kind is SourceKind.HELM
    from_spec = resolve_target(make_app("x", URL, "p", "nginx", source={"kustomize": {}}), tree)
    assert from_spec.source_kind is SourceKind.KUSTOMIZE
    with pytest.raises(WriteBackError, match="cannot tell whether 'p' is Kustomize or Helm"):
        resolve_target(make_app("x", URL, "p", "nginx"), tree)


def test_kustomization_and_manifest_files_are_found_or_reported() -> None:
    tree = Tree({"a/Kustomization": "", "m/one.yaml": "", "m/sub/two.yml": "", "m/notes.txt": ""})
    assert resolve_target(make_app("w", URL, "a", "nginx", target="kustomization"), tree).files == ("a/Kustomization",)
    assert resolve_target(make_app("w", URL, "m", "nginx", target="manifests"), tree).files == (
        "m/one.yaml",
        "m/sub/two.yml",
    )
    with pytest.raises(EditError, match=r"no kustomization\.yaml in 'm'"):
        resolve_target(make_app("w", URL, "m", "nginx", target="kustomization"), tree)
    with pytest.raises(EditError, match="no YAML manifests under 'a'"):
        resolve_target(make_app("w", URL, "a", "nginx", target="manifests"), tree)


def test_current_tags_per_target_and_edits_that_may_create_their_file() -> None:
    tree = Tree(
        {
            "h/values.yaml": "image:\n  tag: 1.0\n",
            "k/kustomization.yaml": "images:\n- name: nginx\n  newTag: '2.0'\n",
            "k/.argocd-source-web.yaml": "kustomize:\n  images: [nginx:3.0]\n",
        }
    )
    helm = make_app("web", URL, "h", "nginx", target="helmvalues")
    kust = make_app("web", URL, "k", "nginx", target="kustomization")
    source = make_app("web", URL, "k", "nginx")
    missing = make_app("web", URL, "k", "nginx", target="helmvalues:other.yaml")
    for app, tag in [(helm, "1.0"), (kust, "2.0"), (source, "3.0"), (missing, None)]:
        target = resolve_target(app, tree)
        assert current_tag(app, app.images[0], tree, target) == tag
    edits = plan_edits(missing, missing.images[0], "4.0", resolve_target(missing, tree))
    assert [(e.path, e.create) for e in edits] == [("k/other.yaml", True)]
    assert edits[0].apply("").text == "image:\n  tag: '4.0'\n".replace("'4.0'", '"4.0"')
    kust_edits = plan_edits(kust, kust.images[0], "4.0", resolve_target(kust, tree))
    assert [e.create for e in kust_edits] == [False]


def test_a_wrong_file_names_the_application_image_and_path() -> None:
    tree = Tree({"k/kustomization.yaml": "images: [nginx\n"})
    app = make_app("web", URL, "k", "nginx", target="kustomization")
    with pytest.raises(EditError) as caught:
        current_tag(app, app.images[0], tree, resolve_target(app, tree))
    assert str(caught.value).startswith("application web, image nginx: k/kustomization.yaml: not valid YAML")


def test_a_new_file_diffs_from_dev_null() -> None:
    assert unified_diff("a/b.yaml", "", "x: 1\n").splitlines()[:2] == ["--- /dev/null", "+++ b/a/b.yaml"]
