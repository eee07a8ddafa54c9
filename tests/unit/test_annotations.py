"""Annotations -> AppSpec: the AIU keys this version reads, and errors that name the annotation."""

from __future__ import annotations

from typing import Any

import pytest

from image_updater.annotations import PREFIX, parse_application
from image_updater.errors import AnnotationError
from image_updater.model.spec import TargetKind, WriteBackMethod


def app(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    source = {"repoURL": "http://127.0.0.1/config.git", "targetRevision": "main", "path": "apps/web"}
    source.update(spec)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": "web",
            "namespace": "argocd",
            "annotations": {PREFIX + k: v for k, v in annotations.items()},
        },
        "spec": {"source": source},
    }


def test_image_list_with_alias_and_constraint() -> None:
    spec = parse_application(app({"image-list": "web=127.0.0.1:5000/team/web:~1.4, redis"}))
    web, redis = spec.images
    assert (web.alias, str(web.name), web.constraint) == ("web", "127.0.0.1:5000/team/web", "~1.4")
    assert (redis.alias, str(redis.name), redis.constraint) == (None, "docker.io/library/redis", None)
    assert spec.source.path == "apps/web" and spec.source.target_revision == "main"


def test_per_image_keys_override_app_wide_defaults() -> None:
    spec = parse_application(
        app(
            {
                "image-list": "a=nginx, b=redis",
                "update-strategy": "semver",
                "a.allow-tags": "regexp:^1\\.",
                "ignore-tags": "*-rc*, latest",
                "b.force-update": "true",
            }
        )
    )
    a, b = spec.images
    assert a.allow_tags == "regexp:^1\\." and b.allow_tags is None
    assert a.ignore_tags == ("*-rc*", "latest") == b.ignore_tags
    assert (a.force_update, b.force_update) == (False, True)


def test_strategy_aliases_are_canonical() -> None:
    spec = parse_application(app({"image-list": "a=nginx", "a.update-strategy": "latest"}))
    assert spec.images[0].strategy == "newest-build"


@pytest.mark.parametrize(
    ("annotations", "annotation", "fragment"),
    [
        (
            {"image-list": "a=nginx", "a.update-strategy": "semverr"},
            "a.update-strategy",
            "unknown update strategy",
        ),
        ({"image-list": ""}, "image-list", "lists no image"),
        ({"image-list": "Bad/Name"}, "image-list", "invalid repository name"),
        ({"image-list": "nginx, nginx"}, "image-list", "listed twice"),
        (
            {"image-list": "nginx", "write-back-method": "svn"},
            "write-back-method",
            "unknown write-back method",
        ),
        ({"image-list": "nginx", "write-back-target": "chart:x"}, "write-back-target", "unknown target"),
        ({"image-list": "a=nginx", "a.force-update": "maybe"}, "a.force-update", "not a boolean"),
        ({"image-list": "nginx", "git-branch": "main:"}, "git-branch", "names no target branch"),
    ],
)
def test_bad_annotations_name_the_app_and_annotation(
    annotations: dict[str, str], annotation: str, fragment: str
) -> None:
    with pytest.raises(AnnotationError) as info:
        parse_application(app(annotations))
    assert info.value.annotation == PREFIX + annotation
    assert fragment in str(info.value)
    assert str(info.value).startswith("application web")


def test_write_back_settings() -> None:
    spec = parse_application(
        app(
            {
                "image-list": "nginx",
                "write-back-method": "git",
                "write-back-target": "kustomization:../base",
                "git-branch": "main:image-updater-{{.SHA256}}",
            }
        )
    )
    wb = spec.write_back
    assert wb.method is WriteBackMethod.GIT and wb.target is TargetKind.KUSTOMIZATION
    assert (wb.target_path, wb.checkout_branch, wb.push_branch) == (
        "../base",
        "main",
        "image-updater-{{.SHA256}}",
    )


def test_defaults_follow_aiu() -> None:
    spec = parse_application(app({"image-list": "nginx"}))
    assert spec.write_back.method is WriteBackMethod.ARGOCD
    assert spec.write_back.target is TargetKind.ARGOCD_SOURCE
    assert spec.namespace == "argocd"


def test_missing_repo_url_is_an_error() -> None:
    manifest = app({"image-list": "nginx"})
    del manifest["spec"]["source"]["repoURL"]
    with pytest.raises(AnnotationError, match="repoURL"):
        parse_application(manifest)
