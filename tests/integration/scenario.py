"""A small builder for end-to-end scenarios: a config repo, Application manifests, a config file.

Each scenario runs the real ``image-updater`` entry point in-process against the real registry and Git
server of the harness, then the test reads what landed in the remote repository.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from image_updater.cli import main
from tests.harness.gitserver import GitHttpServer
from tests.harness.registry import RegistryServer, push_image

BASE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PREFIX = "argocd-image-updater.argoproj.io/"


def push_tags(registry: RegistryServer, repo: str, *tags: str) -> None:
    """Push one small image per tag, each a day newer than the one before."""
    for index, tag in enumerate(tags):
        push_image(registry, repo, tag, created=BASE_TIME + dt.timedelta(days=index))


def application(
    name: str, repo_url: str, path: str, image_list: str, *, target: str | None = "kustomization", **extra: str
) -> str:
    """An Argo CD Application manifest with image-updater annotations."""
    annotations = {"image-list": image_list, "write-back-method": "git"}
    if target:
        annotations["write-back-target"] = target
    annotations.update({k.replace("_", "-"): v for k, v in extra.items()})
    lines = "\n".join(f"    {PREFIX}{k}: {v!r}" for k, v in annotations.items())
    return textwrap.dedent(
        """\
        apiVersion: argoproj.io/v1alpha1
        kind: Application
        metadata:
          name: {name}
          namespace: argocd
          annotations:
        {lines}
        spec:
          project: default
          source:
            repoURL: {repo_url}
            targetRevision: main
            path: {path}
          destination: {{server: "https://kubernetes.default.svc", namespace: {name}}}
        """
    ).format(name=name, lines=lines, repo_url=repo_url, path=path)


def kustomization(image: str, tag: str) -> str:
    """A kustomization overriding ``image``'s tag, with comments and a blank line to keep."""
    return textwrap.dedent(
        f"""\
        # overlay for production
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
          - deployment.yaml

        images:
          - name: {image}
            newTag: {tag}   # managed by image-updater
        """
    )


def deployment(image_ref: str, name: str = "web") -> str:
    """A plain Deployment running ``image_ref``."""
    return textwrap.dedent(
        f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {name}
        spec:
          selector:
            matchLabels: {{app: {name}}}
          template:
            metadata:
              labels: {{app: {name}}}
            spec:
              containers:
                - name: {name}
                  image: {image_ref}
        """
    )


@dataclass
class Scenario:
    """Applications in a folder and a config file, run through the real CLI."""

    tmp: Path
    git: GitHttpServer
    registries: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.apps = self.tmp / "applications"
        self.apps.mkdir(exist_ok=True)
        self.cache = self.tmp / "cache"

    def add_app(self, filename: str, manifest: str) -> None:
        (self.apps / filename).write_text(manifest)

    def write_config(self) -> Path:
        registries = ""
        if self.registries:
            registries = "registries:\n" + "".join(
                "  - " + "\n    ".join(f"{k}: {v}" for k, v in entry.items()) + "\n" for entry in self.registries
            )
        config = self.tmp / "config.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                applications:
                  path: {self.apps}
                git:
                  user: image-updater
                  email: bot@example.com
                  cache_dir: {self.cache}
                  credentials:
                    - url: {self.git.url}/
                      username: {self.git.username}
                      password: env:IU_TEST_GIT_PASSWORD
                log:
                  format: json
                """
            )
            + registries
        )
        return config

    def run(self, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
        monkeypatch.setenv("IU_TEST_GIT_PASSWORD", self.git.password)
        return main(["run", "--once", "--config", str(self.write_config()), *args])


def kustomize_images(git: GitHttpServer, repo: str, path: str, tmp: Path) -> list[str]:
    """Clone ``repo`` and render ``path`` with ``kubectl kustomize``; the container images it yields."""
    checkout = tmp / f"render-{repo}"
    subprocess.run(
        ["git", "clone", "-q", git.repo_url(repo, with_credentials=True), str(checkout)],
        check=True,
        capture_output=True,
    )
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(checkout / path)], check=True, capture_output=True, text=True
    ).stdout
    return [line.split("image:", 1)[1].strip() for line in rendered.splitlines() if "image:" in line]
