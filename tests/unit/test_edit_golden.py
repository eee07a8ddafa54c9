"""Whole-file golden tests of the YAML editors: ``tests/golden/<case>/input.yaml`` edited must equal
``expected.yaml`` byte for byte (both read in binary, so CRLF and a missing final newline count).

Prefixes: ``k-`` kustomization, ``m-`` plain manifests, ``h-`` Helm values, ``a-`` ``.argocd-source``
files. A case may chain further edits (``then``), each applied to the result of the one before, as the
write-back applies the edits of several images to one file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from image_updater.edit.argocd_source import SourceKind, edit_argocd_source, read_argocd_source_tag
from image_updater.edit.helmvalues import HelmKeys, edit_helm_values, read_helm_tag
from image_updater.edit.kustomization import edit_kustomization, read_kustomization_tag
from image_updater.edit.manifests import edit_manifests, read_manifest_tags
from image_updater.model.changes import EditResult
from image_updater.model.ref import parse_image_name

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
DIGEST_4 = "sha256:" + "4" * 64
DIGEST_5 = "sha256:" + "5" * 64


@dataclass(frozen=True)
class Case:
    """One golden directory: which editor, which image, which new tag, and the changes expected."""

    name: str
    editor: str
    image: str
    new_tag: str
    changes: list[tuple[str | None, str]] = field(default_factory=list)
    kustomize_name: str | None = None
    helm: HelmKeys = field(default_factory=HelmKeys)
    source: SourceKind = SourceKind.KUSTOMIZE
    then: tuple[Case, ...] = ()


def helm(spec: str | None = None, name: str | None = None, tag: str | None = None) -> HelmKeys:
    return HelmKeys.of(spec=spec, name=name, tag=tag)


CASES = [
    # kustomization.yaml
    Case("k-comments", "kustomization", "nginx", "1.25.4", [("1.25.3", "1.25.4")]),
    Case("k-newname-kept", "kustomization", "registry.example.com/team/api", "v2.5.0", [("v2.4.1", "v2.5.0")]),
    Case("k-single-quoted", "kustomization", "nginx", "1.26.0", [("1.25", "1.26.0")]),
    Case("k-double-quoted", "kustomization", "ghcr.io/acme/api", "2.5.0", [("2.4.1", "2.5.0")]),
    Case("k-needs-quotes", "kustomization", "ghcr.io/acme/api", "1.20", [("1.19.2", "1.20")]),
    Case("k-crlf", "kustomization", "nginx", "1.25.4", [("1.25.3", "1.25.4")]),
    Case("k-multidoc", "kustomization", "nginx", "1.26.0", [("1.25.3", "1.26.0"), ("1.24.0", "1.26.0")]),
    Case("k-flow-list", "kustomization", "nginx", "2", [("1", "2")]),
    Case("k-missing-newtag", "kustomization", "nginx", "1.26.0", [(None, "1.26.0")]),
    Case("k-append-entry", "kustomization", "ghcr.io/acme/web", "1.0", [(None, "1.0")]),
    Case("k-add-images-block", "kustomization", "nginx", "1.26.0", [(None, "1.26.0")]),
    Case("k-digest-added", "kustomization", "nginx", f"1.26.0@{DIGEST_4}", [("1.25.3", f"1.26.0@{DIGEST_4}")]),
    Case(
        "k-stale-digest-removed",
        "kustomization",
        "nginx",
        "1.26.0",
        [(f"1.25.3@sha256:{'1' * 64}", "1.26.0")],
    ),
    Case(
        "k-kustomize-name",
        "kustomization",
        "ghcr.io/acme/web",
        "3.2.0",
        [("3.1.0", "3.2.0")],
        kustomize_name="web-image",
    ),
    Case("k-empty-newtag", "kustomization", "nginx", "1.26.0", [(None, "1.26.0")]),
    Case("k-aliases", "kustomization", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    # plain Kubernetes manifests
    Case("m-deployment-init", "manifests", "registry.example.com/team/web", "1.5.0", [("1.4.2", "1.5.0")]),
    Case("m-cronjob", "manifests", "ghcr.io/acme/report", "2024.2", [("2024.1", "2024.2")]),
    Case("m-two-deployments", "manifests", "nginx", "1.26.0", [("1.25.3", "1.26.0"), ("1.24.0", "1.26.0")]),
    Case("m-service-untouched", "manifests", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    Case("m-untagged", "manifests", "ghcr.io/acme/agent", "0.3.0", [(None, "0.3.0")]),
    Case("m-anchors", "manifests", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    Case("m-block-scalar", "manifests", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    Case("m-no-final-newline", "manifests", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    Case(
        "m-digest",
        "manifests",
        "nginx",
        f"1.26.0@{DIGEST_5}",
        [(f"1.25.3@sha256:{'2' * 64}", f"1.26.0@{DIGEST_5}"), (f"@sha256:{'3' * 64}", f"1.26.0@{DIGEST_5}")],
    ),
    Case("m-list-and-pod", "manifests", "localhost:5000/web", "1.1", [("1.0", "1.1"), ("0.9", "1.1")]),
    Case("m-crlf", "manifests", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    Case("m-flow-containers", "manifests", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    Case("m-already-current", "manifests", "nginx", "1.26.0", []),
    Case(
        "m-all-kinds",
        "manifests",
        "nginx",
        "1.26.0",
        [("1.25.3", "1.26.0")],
    ),
    # kustomization: newName and kustomize.image-name
    Case(
        "k-newname-added",
        "kustomization",
        "ghcr.io/acme/web",
        "3.2.0",
        [("3.1.0", "3.2.0")],
        kustomize_name="web-image",
    ),
    Case("k-newname-placeholder", "kustomization", "ghcr.io/acme/web", "3.2.0", [("3.1.0", "3.2.0")]),
    Case("k-block-scalar", "kustomization", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    # Helm values
    Case(
        "h-comments-anchors",
        "helmvalues",
        "ghcr.io/acme/web",
        "1.5.0",
        [("1.4.2", "1.5.0")],
        helm=helm(name="image.repository", tag="image.tag"),
    ),
    Case(
        "h-same-image-twice",
        "helmvalues",
        "nginx",
        "1.26.0",
        [("1.25.3", "1.26.0")],
        helm=helm(name="frontend.image.repository", tag="frontend.image.tag"),
    ),
    Case(
        "h-same-image-two-aliases",
        "helmvalues",
        "nginx",
        "1.26.0",
        [("1.25.3", "1.26.0")],
        helm=helm(name="frontend.image.repository", tag="frontend.image.tag"),
        then=(
            Case(
                "",
                "helmvalues",
                "nginx",
                "1.27.0",
                [("1.25.3", "1.27.0")],
                helm=helm(name="backend.image.repository", tag="backend.image.tag"),
            ),
        ),
    ),
    Case("h-spec", "helmvalues", "nginx", "1.26.0", [("1.25.3", "1.26.0")], helm=helm(spec="app.image")),
    Case("h-crlf", "helmvalues", "nginx", "1.26.0", [("1.25.3", "1.26.0")], helm=helm(tag="image.tag")),
    Case(
        "h-list-index",
        "helmvalues",
        "nginx",
        "1.20",
        [("1.0", "1.20")],
        helm=helm(name="workers[1].image.repository", tag="workers[1].image.tag"),
        then=(
            Case(
                "",
                "helmvalues",
                "nginx",
                "1.20",
                [("1.0", "1.20")],
                helm=helm(name="workers[0].image.repository", tag="workers[0].image.tag"),
            ),
        ),
    ),
    Case(
        "h-missing-keys",
        "helmvalues",
        "ghcr.io/acme/web",
        "2.0.0",
        [(None, "2.0.0")],
        helm=helm(name="image.repository", tag="image.tag"),
    ),
    Case("h-literal-dotted-key", "helmvalues", "nginx", "1.1.0", [("1.0.0", "1.1.0")]),
    Case(
        "h-flow-digest",
        "helmvalues",
        "nginx",
        f"1.26.0@{DIGEST_4}",
        [("1.25.3", f"1.26.0@{DIGEST_4}")],
        helm=helm(name="image.repository", tag="image.tag"),
    ),
    # .argocd-source-<app>.yaml
    Case("a-kustomize-merge", "argocd-source", "nginx", "1.26.0", [("1.25.3", "1.26.0")]),
    Case("a-kustomize-new-entry", "argocd-source", "ghcr.io/acme/web", "1.20", [(None, "1.20")]),
    Case("a-kustomize-empty", "argocd-source", "nginx", "1.26.0", [(None, "1.26.0")]),
    Case(
        "a-kustomize-name",
        "argocd-source",
        "ghcr.io/acme/web",
        "3.2.0",
        [("3.1.0", "3.2.0")],
        kustomize_name="web-image",
    ),
    Case("a-crlf", "argocd-source", "nginx", f"1.26.0@{DIGEST_5}", [("1.25.3", f"1.26.0@{DIGEST_5}")]),
    Case("a-helm-merge", "argocd-source", "nginx", "1.20", [("1.25.3", "1.20")], source=SourceKind.HELM),
    Case("a-helm-new", "argocd-source", "nginx", "1.26.0", [(None, "1.26.0")], source=SourceKind.HELM),
    Case(
        "a-helm-spec",
        "argocd-source",
        "ghcr.io/acme/web",
        "1.1.0",
        [("1.0.0", "1.1.0")],
        source=SourceKind.HELM,
        helm=helm(spec="web.image"),
    ),
]


def run_one(case: Case, text: str) -> EditResult:
    image = parse_image_name(case.image)
    if case.editor == "kustomization":
        return edit_kustomization(
            text, image, case.new_tag, image_label=case.image, kustomize_name=case.kustomize_name, file="f"
        )
    if case.editor == "helmvalues":
        return edit_helm_values(text, image, case.new_tag, keys=case.helm, image_label=case.image, file="f")
    if case.editor == "argocd-source":
        return edit_argocd_source(
            text,
            image,
            case.new_tag,
            kind=case.source,
            image_label=case.image,
            kustomize_name=case.kustomize_name,
            helm=case.helm,
            file="f",
        )
    return edit_manifests(text, image, case.new_tag, image_label=case.image, file="f")


def run(case: Case, text: str) -> EditResult:
    """The case's edit and its ``then`` edits, in order; the changes of all of them."""
    result = run_one(case, text)
    changes = list(result.changes)
    for step in case.then:
        result = run_one(step, result.text)
        changes += result.changes
    return EditResult(text=result.text, changes=tuple(changes))


def read(case: Case, text: str) -> list[str]:
    image = parse_image_name(case.image)
    if case.editor == "kustomization":
        tag = read_kustomization_tag(text, image, kustomize_name=case.kustomize_name)
    elif case.editor == "helmvalues":
        tag = read_helm_tag(text, image, case.helm)
    elif case.editor == "argocd-source":
        tag = read_argocd_source_tag(
            text, image, kind=case.source, kustomize_name=case.kustomize_name, helm=case.helm
        )
    else:
        return read_manifest_tags(text, image)
    return [] if tag is None else [tag]


def load(path: Path) -> str:
    # newline="" keeps CRLF as it is in the file
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_golden(case: Case) -> None:
    directory = GOLDEN / case.name
    result = run(case, load(directory / "input.yaml"))
    assert result.text.encode("utf-8") == (directory / "expected.yaml").read_bytes()
    assert [(c.old, c.new) for c in result.changes] == case.changes + [ch for s in case.then for ch in s.changes]
    assert all(c.image == case.image and c.file == "f" for c in result.changes)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_golden_reads_back_the_new_tag_and_is_stable(case: Case) -> None:
    expected = load(GOLDEN / case.name / "expected.yaml")
    for step in (case, *case.then):
        assert read(step, expected)
        assert set(read(step, expected)) == {step.new_tag}
    again = run(case, expected)
    assert again.text == expected
    assert again.changes == ()


@pytest.mark.parametrize("name", ["k-crlf", "m-crlf", "h-crlf", "a-crlf"])
def test_crlf_cases_really_hold_crlf(name: str) -> None:
    # Guards against a checkout that converted line endings (tests/golden/.gitattributes forbids it).
    for file in ("input.yaml", "expected.yaml"):
        data = (GOLDEN / name / file).read_bytes()
        assert data.count(b"\r\n") == data.count(b"\n") > 0


def test_every_golden_directory_has_a_case() -> None:
    directories = {path.name for path in GOLDEN.iterdir() if path.is_dir()}
    assert directories == {case.name for case in CASES}
