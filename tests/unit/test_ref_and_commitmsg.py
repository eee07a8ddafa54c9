"""Image references (Docker Hub normalisation) and commit message rendering."""

from __future__ import annotations

import pytest

from image_updater.commitmsg import render_commit_message
from image_updater.errors import ImageReferenceError
from image_updater.model.changes import Change
from image_updater.model.ref import parse_image_name, parse_image_ref, same_image


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag"),
    [
        ("nginx", "docker.io", "library/nginx", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25"),
        ("bitnami/redis", "docker.io", "bitnami/redis", None),
        ("index.docker.io/library/nginx", "docker.io", "library/nginx", None),
        ("ghcr.io/org/app:v1", "ghcr.io", "org/app", "v1"),
        ("127.0.0.1:5000/demo/nodeapp:1.0.0", "127.0.0.1:5000", "demo/nodeapp", "1.0.0"),
        ("localhost/app", "localhost", "app", None),
    ],
)
def test_parse(text: str, registry: str, repository: str, tag: str | None) -> None:
    ref = parse_image_ref(text)
    assert (ref.name.registry, ref.name.repository, ref.tag) == (registry, repository, tag)


@pytest.mark.parametrize(
    "text", ["", "UPPER/case", "a//b", "nginx:bad tag", "nginx@sha256:xyz", "bad_host:x:y/a"]
)
def test_malformed(text: str) -> None:
    with pytest.raises(ImageReferenceError):
        parse_image_ref(text)


def test_docker_hub_api_host() -> None:
    assert parse_image_name("nginx").api_host == "registry-1.docker.io"
    assert same_image("nginx:1", "docker.io/library/nginx")


def test_commit_message_lists_every_change() -> None:
    changes = [Change("nginx", "1.0", "1.1", "a.yaml"), Change("redis", None, "7", "b.yaml")]
    message = render_commit_message("build: update {{ .AppName }}", ["web", "api"], changes)
    assert message.splitlines()[0] == "build: update web, api"
    assert "- nginx: 1.0 -> 1.1" in message and "- redis: (none) -> 7" in message


def test_commit_message_changes_variable() -> None:
    message = render_commit_message("x {{ app_name }}\n\n{{ changes }}", ["web"], [Change("a", "1", "2")])
    assert message == "x web\n\n- a: 1 -> 2\n"
