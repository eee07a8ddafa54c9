"""``.argocd-source-<app>.yaml``: AIU's file name, Kustomize image entries, Helm parameters."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from image_updater.edit.argocd_source import SourceKind, edit_argocd_source, file_name, read_argocd_source_tag
from image_updater.edit.helmvalues import HelmKeys
from image_updater.errors import EditError
from image_updater.model.ref import parse_image_name

NGINX = parse_image_name("nginx")
K, H = SourceKind.KUSTOMIZE, SourceKind.HELM
DIGEST = "sha256:" + "c" * 64


def edit(
    text: str,
    new_tag: str = "1.26.0",
    kind: SourceKind = K,
    *,
    kustomize_name: str | None = None,
    helm: HelmKeys = HelmKeys(),  # noqa: B008 - frozen
) -> str:
    result = edit_argocd_source(
        text, NGINX, new_tag, kind=kind, image_label="nginx", kustomize_name=kustomize_name, helm=helm
    )
    return result.text


@pytest.mark.parametrize(
    ("namespace", "controller", "expected"),
    [
        ("argocd", "argocd", ".argocd-source-web.yaml"),
        ("", "argocd", ".argocd-source-web.yaml"),
        ("team-a", "argocd", ".argocd-source-team-a_web.yaml"),
        ("argocd", "gitops", ".argocd-source-argocd_web.yaml"),
    ],
)
def test_file_name_follows_aiu(namespace: str, controller: str, expected: str) -> None:
    assert file_name("web", namespace, controller) == expected


@pytest.mark.parametrize(
    ("entry", "tag"),
    [
        ("nginx:1.25.3", "1.25.3"),
        ("docker.io/library/nginx:1.25.3", "1.25.3"),
        ("nginx=mirror.example.com/nginx:1.2", "1.2"),  # renamed by its kustomize name
        (f"nginx:1.2@{DIGEST}", f"1.2@{DIGEST}"),
        (f"nginx@{DIGEST}", f"@{DIGEST}"),
        ("nginx", None),
        ("nginx-exporter:1.0", "none"),
    ],
)
def test_reading_kustomize_entries(entry: str, tag: str | None) -> None:
    text = f"kustomize:\n  images:\n  - redis:7\n  - {entry}\n"
    expected = None if tag == "none" else tag
    assert read_argocd_source_tag(text, NGINX, kind=K) == expected


def test_an_entry_keeps_its_name_and_image_as_written() -> None:
    assert edit("kustomize:\n  images: [nginx=mirror.example.com/nginx:1.0]\n") == (
        "kustomize:\n  images: [nginx=mirror.example.com/nginx:1.26.0]\n"
    )
    assert edit("kustomize:\n  images:\n  - 'nginx'\n") == "kustomize:\n  images:\n  - 'nginx:1.26.0'\n"


def test_with_a_kustomize_name_the_entry_is_matched_by_name_and_renamed_to_the_image() -> None:
    text = "kustomize:\n  images:\n  - web=mirror.example.com/other:1.0\n  - nginx:9\n"
    assert edit(text, kustomize_name="web") == (
        "kustomize:\n  images:\n  - web=nginx:1.26.0\n  - nginx:9\n"
    )
    assert edit("kustomize:\n  images: []\n", kustomize_name="web") == "kustomize:\n  images: [web=nginx:1.26.0]\n"


def test_missing_sections_are_added_and_null_ones_filled() -> None:
    assert edit("helm: {}\n") == "helm: {}\nkustomize:\n  images:\n  - nginx:1.26.0\n"
    assert edit("kustomize:\n") == "kustomize:\n  images:\n  - nginx:1.26.0\n"
    assert edit("kustomize:\n  images:\n") == "kustomize:\n  images:\n  - nginx:1.26.0\n"


def test_helm_parameters_are_set_and_forced_to_strings_in_the_files_spelling() -> None:
    text = "helm:\n  parameters:\n  - name: image.tag\n    value: 1.0\n    forceString: false\n"
    assert edit(text, "1.20", kind=H) == (
        'helm:\n  parameters:\n  - name: image.tag\n    value: "1.20"\n    forceString: true\n'
        "  - name: image.name\n    value: nginx\n    forceString: true\n"
    )
    data = YAML(typ="safe").load(edit("", "1.20", kind=H))
    assert data == {
        "helm": {
            "parameters": [
                {"name": "image.name", "value": "nginx", "forcestring": True},
                {"name": "image.tag", "value": "1.20", "forcestring": True},
            ]
        }
    }


def test_helm_spec_and_custom_names() -> None:
    keys = HelmKeys.of(spec=None, name="web.repo", tag="web.tag")
    text = "helm:\n  parameters:\n  - {name: web.repo, value: docker.io/library/nginx, forcestring: true}\n"
    assert edit(text, kind=H, helm=keys) == (
        text + "  - name: web.tag\n    value: 1.26.0\n    forcestring: true\n"
    )
    spec = HelmKeys.of(spec="web.image", name=None, tag=None)
    assert read_argocd_source_tag(edit("", kind=H, helm=spec), NGINX, kind=H, helm=spec) == "1.26.0"


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("kustomize: [a]\n", K, "kustomize .* is not a mapping"),
        ("kustomize:\n  images:\n  - {name: nginx}\n", K, "not an image text"),
        ("helm:\n  parameters: {a: 1}\n", H, "is not a list"),
        ("helm:\n  parameters:\n  - image.tag\n", H, "is not a mapping"),
        ("a: 1\n---\nb: 2\n", K, "holds one document"),
        ("kustomize: {images: [nginx:1]\n", K, "not valid YAML"),
    ],
)
def test_shapes_that_do_not_fit_are_refused(text: str, kind: SourceKind, message: str) -> None:
    with pytest.raises(EditError, match=message):
        edit(text, kind=kind)


def test_an_override_already_current_is_no_change() -> None:
    text = "kustomize:\n  images:\n  - nginx:1.26.0\n"
    result = edit_argocd_source(text, NGINX, "1.26.0", kind=K, image_label="nginx")
    assert result.text is text and not result.changes
