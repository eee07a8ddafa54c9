"""Commit message and branch name templates (AIU's Go-template forms and ours), and the Git settings
that shape a write-back."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from image_updater.annotations import parse_application
from image_updater.commitmsg import (
    ImageChange,
    changes_sha256,
    render_branch_name,
    render_commit_message,
    render_template,
    sanitize_branch_name,
)
from image_updater.config import settings_from_mapping
from image_updater.errors import AnnotationError, ConfigError, WriteBackError
from image_updater.model.changes import Change

AIU_DEFAULT = """build: automatic update of {{ .AppName }}

{{ range .AppChanges -}}
updates image {{ .Image }} tag '{{ .OldTag }}' to '{{ .NewTag }}'
{{ end -}}
"""
CHANGES = [Change("nginx", "1.0", "1.1", "a.yaml"), Change("nginx", "1.0", "1.1", "b.yaml"), Change("redis", None, "7")]


def test_aius_default_commit_message_renders_as_aiu_does() -> None:
    assert render_commit_message(AIU_DEFAULT, ["web"], CHANGES) == (
        "build: automatic update of web\n\nupdates image nginx tag '1.0' to '1.1'\nupdates image redis tag '' to '7'\n"
    )


def test_a_template_without_the_changes_gets_them_appended_and_typos_show() -> None:
    message = render_commit_message("chore: {{ .AppName }} {{ .Oops }}", ["a", "b", "a"], CHANGES)
    assert message == "chore: a, b {{ .Oops }}\n\n- nginx: 1.0 -> 1.1\n- redis: (none) -> 7\n"
    assert render_commit_message("{{ change_count }} {{ .ChangeCount }}", ["a"], CHANGES).startswith("2 2\n")


def test_trim_markers_and_nested_text() -> None:
    template = "a  {{- .X -}}  b {{ range .L }}[{{ .Y }}|{{ .X }}]{{ end }}"
    text, unknown = render_template(template, {"X": "x", "L": [{"Y": "1"}]})
    assert (text, unknown) == ("axb [1|x]", [])
    assert render_template("{{ range .Nope }}x{{ end }}", {})[1] == ["{{ range .Nope }}"]


def test_branch_names_from_templates() -> None:
    changes = [ImageChange("ghcr.io/acme/web", "web", "1.0", "1.1"), ImageChange("nginx", "", "", "2")]
    sha = changes_sha256(changes)
    assert len(sha) == 64 and sha == changes_sha256(list(changes)) != changes_sha256(changes[:1])
    assert render_branch_name("image-updater-{{.SHA256}}", changes) == f"image-updater-{sha}"
    assert render_branch_name("upd/{{range .Images}}{{.Alias}}{{.Name}}-{{.NewTag}}.{{end}}", changes) == (
        "upd/webghcr.io/acme/web-1.1.nginx-2"
    )
    assert len(render_branch_name("x" * 300, changes)) == 255
    with pytest.raises(WriteBackError, match="unknown"):
        render_branch_name("u-{{ .Sha }}", changes)
    with pytest.raises(WriteBackError, match="empty"):
        render_branch_name("{{range .Images}}{{end}}", changes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a b~c^d:e?f*g[h\\i", "a-b-c-d-e-f-g-h-i"),
        ("x..y//z", "x.y/z"),
        ("/.hidden/name.lock/", "hidden/name"),
        ("tag@{1}", "tag-{1}"),
        ("new@sha256:abc", "new@sha256-abc"),
    ],
)
def test_branch_names_are_made_valid(text: str, expected: str) -> None:
    assert sanitize_branch_name(text) == expected


def application(branch: str) -> dict[str, object]:
    return {
        "metadata": {
            "name": "web",
            "annotations": {
                "argocd-image-updater.argoproj.io/image-list": "nginx",
                "argocd-image-updater.argoproj.io/git-branch": branch,
            },
        },
        "spec": {"source": {"repoURL": "https://example.com/r.git"}},
    }


def test_branch_templates_are_checked_when_the_annotation_is_read() -> None:
    spec = parse_application(application("main:image-updater-{{.SHA256}}"))
    assert (spec.write_back.checkout_branch, spec.write_back.push_branch) == ("main", "image-updater-{{.SHA256}}")
    with pytest.raises(AnnotationError, match=r"uses \{\{\.Sha\}\}"):
        parse_application(application("main:u-{{.Sha}}"))


def test_git_settings_for_signing_and_the_controller_namespace() -> None:
    text = "git:\n  signing_key: env:KEY\n  signing_method: SSH\n  sign_off: true\n  argocd_namespace: gitops\n"
    git = settings_from_mapping(YAML(typ="rt").load(text)).git
    assert (git.signing_key, git.signing_method, git.sign_off) == ("env:KEY", "ssh", True)
    assert git.argocd_namespace == "gitops"
    with pytest.raises(ConfigError, match=r"git\.signing_method"):
        settings_from_mapping(YAML(typ="rt").load("git:\n  signing_method: x509\n"))
    with pytest.raises(ConfigError, match=r"git.credentials\[0\].literal"):
        settings_from_mapping(YAML(typ="rt").load("git:\n  credentials:\n  - url: x\n    literal: true\n"))
    with pytest.raises(ConfigError, match=r"git\.push_retries"):
        settings_from_mapping(YAML(typ="rt").load("git:\n  push_retries: -1\n"))
