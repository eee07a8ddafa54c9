"""``kubectl kustomize`` renders every edited kustomization golden case with the expected images.

The expected file of each ``tests/golden/k-*`` case is used byte for byte as a ``kustomization.yaml``,
next to a Deployment with one container per ``images:`` entry (and stand-ins for the other resources it
lists); a file without ``resources:`` gets one appended after the edited text. kustomize reads one
document per kustomization, so the multi-document case is rendered document by document.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import require_binary
from tests.unit.test_edit_golden import CASES, GOLDEN, load

pytestmark = pytest.mark.integration

D4 = "sha256:" + "4" * 64

#: per case and document: ``images:`` entry name -> the image kustomize renders for it
EXPECTED: dict[str, list[dict[str, str]]] = {
    "k-add-images-block": [{"nginx": "nginx:1.26.0"}],
    "k-aliases": [{"nginx": "nginx:1.26.0"}],
    "k-append-entry": [{"redis": "redis:7.2.4", "ghcr.io/acme/web": "ghcr.io/acme/web:1.0"}],
    "k-block-scalar": [{"nginx": "nginx:1.26.0"}],
    "k-comments": [{"nginx": "nginx:1.25.4", "redis": "redis:7.2.4"}],
    "k-crlf": [{"nginx": "nginx:1.25.4"}],
    "k-digest-added": [{"nginx": f"mirror.example.com/nginx:1.26.0@{D4}"}],
    "k-double-quoted": [{"ghcr.io/acme/api": "ghcr.io/acme/api:2.5.0"}],
    "k-empty-newtag": [{"nginx": "mirror.example.com/nginx:1.26.0"}],
    "k-flow-list": [{"redis": "redis:7", "nginx": "nginx:2"}],
    "k-kustomize-name": [{"web-image": "ghcr.io/acme/web:3.2.0", "ghcr.io/acme/web": "ghcr.io/acme/web:9.9.9"}],
    "k-missing-newtag": [
        {"nginx": "registry.example.com/mirror/nginx:1.26.0", "redis": "registry.example.com/mirror/redis"}
    ],
    "k-multidoc": [{"nginx": "nginx:1.26.0"}, {"docker.io/library/nginx": "docker.io/library/nginx:1.26.0"}],
    "k-needs-quotes": [{"ghcr.io/acme/api": "ghcr.io/acme/api:1.20", "ghcr.io/acme/web": "ghcr.io/acme/web:v1.0"}],
    "k-newname-added": [{"web-image": "ghcr.io/acme/web:3.2.0"}],
    "k-newname-kept": [
        {
            "registry.example.com/team/api": "registry.example.com/team/api-v2:v2.5.0",
            "registry.example.com/team/worker": "registry.example.com/team/worker:v2.4.1",
        }
    ],
    "k-newname-placeholder": [{"app": "ghcr.io/acme/web:3.2.0"}],
    "k-single-quoted": [{"redis": "redis:7.2", "nginx": "nginx:1.26.0"}],
    "k-stale-digest-removed": [{"nginx": "mirror.example.com/nginx:1.26.0"}],
}
KUSTOMIZATION_CASES = [case.name for case in CASES if case.editor == "kustomization"]


def test_every_kustomization_case_has_expected_images() -> None:
    assert sorted(EXPECTED) == sorted(KUSTOMIZATION_CASES)


def deployment(names: list[str]) -> str:
    containers = "".join(f"      - name: c{i}\n        image: {name}\n" for i, name in enumerate(names))
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations: {owner: test}\n"
        "spec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
        f"    spec:\n      containers:\n{containers}"
    )


def documents(text: str) -> list[str]:
    """The documents of a YAML text, each as its own text (line breaks kept)."""
    parts = re.split(r"^(?:---|\.\.\.)[ \t]*\r?$\n?", text, flags=re.M)
    return [part for part in parts if YAML(typ="safe").load(part) is not None]


def render(folder: Path, text: str) -> dict[str, str]:
    """Render ``text`` as a kustomization with stand-ins for what it refers to; container -> image."""
    data = YAML(typ="safe").load(text)
    names = [str(entry["name"]) for entry in data.get("images") or []]
    resources = list(data.get("resources") or [])
    newline = "\r\n" if "\r\n" in text else "\n"
    if not resources:
        resources = ["deployment.yaml"]
        ending = "" if text.endswith(("\n", "\r")) else newline
        text = f"{text}{ending}resources:{newline}- deployment.yaml{newline}"
    folder.mkdir(parents=True)
    with (folder / "kustomization.yaml").open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    for resource in resources:
        target = (folder / resource).resolve()
        if resource == "deployment.yaml":
            target.write_text(deployment(names))
        elif resource.endswith(".yaml"):
            target.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {target.stem}\n")
        else:
            target.mkdir(parents=True, exist_ok=True)
            (target / "deployment.yaml").write_text(deployment(names))
            (target / "kustomization.yaml").write_text("resources:\n- deployment.yaml\n")
    done = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in YAML(typ="safe").load_all(done.stdout) if doc and doc["kind"] == "Deployment"]
    assert len(rendered) == 1
    containers = rendered[0]["spec"]["template"]["spec"]["containers"]
    return {names[int(c["name"][1:])]: c["image"] for c in containers}


@pytest.mark.parametrize("name", KUSTOMIZATION_CASES)
def test_kubectl_kustomize_renders_the_edited_images(name: str, tmp_path: Path) -> None:
    require_binary("kubectl", "kubernetes-client")
    # kustomize applies the entries in order: an entry named like an earlier entry's newName retags it
    texts = documents(load(GOLDEN / name / "expected.yaml"))
    assert len(texts) == len(EXPECTED[name])
    for index, (text, expected) in enumerate(zip(texts, EXPECTED[name], strict=True)):
        assert render(tmp_path / "a" / "b" / f"doc{index}", text) == expected
