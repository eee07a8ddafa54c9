"""Reading and setting tags in plain Kubernetes manifests: which containers, what is read, errors."""

from __future__ import annotations

import pytest

from image_updater.edit.manifests import POD_SPEC_PATHS, edit_manifests, read_manifest_tags
from image_updater.errors import EditError
from image_updater.model.ref import parse_image_name

NGINX = parse_image_name("nginx")
DIGEST = "sha256:" + "a" * 64

POD = f"""\
kind: Pod
spec:
  containers:
  - image: nginx:1.0
  - image: nginx
  - image: ghcr.io/acme/nginx:9.9
  - image: nginx@{DIGEST}
  initContainers:
  - image: docker.io/library/nginx:0.1
  - image: nginx:1.0@{DIGEST}
"""


def test_read_lists_tags_in_file_order_and_leaves_untagged_images_out() -> None:
    assert read_manifest_tags(POD, NGINX) == ["1.0", f"@{DIGEST}", "0.1", f"1.0@{DIGEST}"]


def test_edit_changes_every_matching_container_once_per_old_tag() -> None:
    result = edit_manifests(POD, NGINX, "1.1", image_label="nginx", file="pod.yaml")
    assert read_manifest_tags(result.text, NGINX) == ["1.1"] * 5
    assert "ghcr.io/acme/nginx:9.9" in result.text
    assert "docker.io/library/nginx:1.1" in result.text
    assert [(c.old, c.new) for c in result.changes] == [
        ("1.0", "1.1"),
        (None, "1.1"),
        (f"@{DIGEST}", "1.1"),
        ("0.1", "1.1"),
        (f"1.0@{DIGEST}", "1.1"),
    ]
    assert {c.file for c in result.changes} == {"pod.yaml"}


@pytest.mark.parametrize("kind", sorted(POD_SPEC_PATHS))
def test_every_workload_kind(kind: str) -> None:
    path = POD_SPEC_PATHS[kind]
    text = f"kind: {kind}\n"
    for depth, key in enumerate(path):
        text += "  " * depth + f"{key}:\n"
    text += "  " * len(path) + "containers:\n" + "  " * len(path) + "- image: nginx:1.0\n"
    assert read_manifest_tags(text, NGINX) == ["1.0"]
    assert edit_manifests(text, NGINX, "2.0", image_label="nginx").text == text.replace("1.0", "2.0")


@pytest.mark.parametrize("kind", ["Service", "ConfigMap", "Secret", "Ingress", "HorizontalPodAutoscaler"])
def test_other_kinds_are_never_touched(kind: str) -> None:
    text = f"kind: {kind}\nspec:\n  template:\n    spec:\n      containers:\n      - image: nginx:1.0\n"
    assert read_manifest_tags(text, NGINX) == []
    result = edit_manifests(text, NGINX, "2.0", image_label="nginx")
    assert result.text is text and result.changes == ()


def test_documents_without_kind_or_pod_spec_and_empty_documents_are_skipped() -> None:
    text = "---\n---\nmetadata: {name: nginx}\n---\nkind: Deployment\nspec:\n  template:\n---\nkind: Pod\n"
    assert read_manifest_tags(text, NGINX) == []
    assert edit_manifests(text, NGINX, "2.0", image_label="nginx").text == text


def test_a_file_that_cannot_mention_the_image_is_not_parsed() -> None:
    text = "kind: Pod\nspec: [ not yaml"
    redis = parse_image_name("redis")
    assert read_manifest_tags(text, redis) == []
    assert edit_manifests(text, redis, "7.2", image_label="redis").text is text


def test_value_on_its_own_line_and_explicit_tag_are_edited_in_place() -> None:
    text = "kind: Pod\nspec:\n  containers:\n  - image:\n      nginx:1.0\n  - image: !!str nginx:1.0\n"
    result = edit_manifests(text, NGINX, "1.1", image_label="nginx")
    assert result.text == text.replace("1.0", "1.1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Pod\nspec: {containers: [nginx\n", "not valid YAML"),
        ("- image: nginx\n", r"document 1 \(line 1\) is a list, not a mapping"),
        ("kind: Pod\n---\nnginx:1.0\n", r"document 2 \(line 3\) is a single value, not a mapping"),
        ("kind: Deployment\nspec: [nginx]\n", r"Deployment spec \(line 2\) is not a mapping"),
        ("kind: CronJob\nspec:\n  jobTemplate: nginx\n", r"CronJob spec.jobTemplate \(line 3\) is not a mapping"),
        ("kind: Pod\nspec:\n  containers: {image: nginx}\n", r"containers \(line 3\) is not a list"),
        ("kind: Pod\nspec:\n  containers:\n  - nginx\n", "an entry of containers .* is not a mapping"),
        ("kind: Pod\nspec:\n  containers:\n  - image: [nginx]\n", r"image \(line 4\) is not a single value"),
        ("kind: List\nitems: nginx\n", "List items .* is not a list"),
        ("kind: Pod\nkind: Pod\nspec: {containers: [{image: nginx}]}\n", "duplicate key 'kind'"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(EditError, match=message) as caught:
        edit_manifests(text, NGINX, "1.1", image_label="nginx", file="deploy.yaml")
    assert caught.value.path == "deploy.yaml"
    with pytest.raises(EditError, match=message):
        read_manifest_tags(text, NGINX)


def test_an_invalid_new_tag_is_refused_before_anything_else() -> None:
    with pytest.raises(EditError, match="cannot write tag"):
        edit_manifests("kind: Service\n", NGINX, ":bad", image_label="nginx")
