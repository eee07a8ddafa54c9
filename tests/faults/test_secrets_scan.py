"""Secrets never leave in logs, errors, commit messages or remote files.

A representative set of runs of the real CLI (as subprocesses, debug logging, JSON and console), with
known test secrets: registry Basic credentials (right and wrong), a token registry, Git credentials
(right and wrong), a repository URL with credentials in it, an ``ext:`` program, ``test --credentials``.
Everything they print, every commit message and every file of every remote repository they wrote to,
and the clone cache of the runs with configured credentials, are then scanned for each secret, in
plain text, base64 (as in a Basic header) and URL-encoded. Tokens the token server issued (JWTs) must
not appear either.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import RegistryFactory
from tests.faults.kit import Config
from tests.harness.gitserver import GitHttpServer, run_git
from tests.harness.registry import RegistryServer
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("image-updater")
WRONG_REGISTRY = "Wr0ng-Registry-Pass-1c9e"
WRONG_GIT = "Wr0ng-Git-Pass-77af"
EMBEDDED = "Embedded-Url-Pass-55d1"
EXT_SECRET = "Ext-Program-Pass-a8e3"


@dataclass
class Collected:
    """Everything the scenarios showed to the outside."""

    texts: dict[str, str] = field(default_factory=dict)
    repos: list[str] = field(default_factory=list)
    caches: list[Path] = field(default_factory=list)

    def run(self, label: str, config: Config, *args: str, env: dict[str, str] | None = None) -> int:
        """Run the CLI and keep what it printed."""
        command = [str(CLI), *(args or ("run", "--once", "--config", str(config.write())))]
        done = subprocess.run(
            command, env={**config.env(), **(env or {})}, capture_output=True, text=True, timeout=120, check=False
        )
        self.texts[label] = done.stdout + done.stderr
        return done.returncode


def _forms(secret: str) -> list[str]:
    return [secret, urllib.parse.quote(secret, safe=""), base64.b64encode(secret.encode()).decode()]


def _scan(name: str, text: str, secrets: dict[str, str]) -> list[str]:
    found = []
    for label, secret in secrets.items():
        for form in _forms(secret):
            if form in text:
                found.append(f"{label} ({form[:6]}...) in {name}")
    return found


def test_no_secret_appears_in_any_output_commit_or_remote_file(
    registry_basic: RegistryServer,
    registry_factory: RegistryFactory,
    git_server: GitHttpServer,
    tmp_path: Path,
) -> None:
    user, password = registry_basic.credentials or ("", "")
    token_registry = registry_factory("token")
    tokens = token_registry.token_server
    assert tokens is not None
    seen = Collected()
    secrets = {
        "registry password": password,
        "registry user:password": f"{user}:{password}",
        "token server password": tokens.password,
        "git password": git_server.password,
        "wrong registry password": WRONG_REGISTRY,
        "wrong git password": WRONG_GIT,
        "password in a repository URL": EMBEDDED,
        "ext: program password": EXT_SECRET,
    }
    for registry, repo in ((registry_basic, "secrets/basic"), (token_registry, "secrets/token")):
        push_tags(registry, repo, "1.0.0", "1.1.0")
    basic_image = f"{registry_basic.host}/secrets/basic"
    token_image = f"{token_registry.host}/secrets/token"
    registries = [
        {"name": "basic", "prefix": registry_basic.host, "api_url": registry_basic.url, "credentials": "env:IU_REG"},
        {"name": "token", "prefix": token_registry.host, "api_url": token_registry.url, "credentials": "env:IU_TOK"},
    ]
    creds = {"IU_REG": f"{user}:{password}", "IU_TOK": f"{tokens.username}:{tokens.password}"}

    def scenario(label: str, *, image: str, env: dict[str, str], url: str | None = None, **config: object) -> int:
        repo = f"secrets-{label}"
        seen.repos.append(repo)
        created = git_server.create_repo(repo, {"k/kustomization.yaml": kustomization(image, "1.0.0")})
        setup = Config(tmp_path / label, git_server, registries=[dict(r) for r in registries], **config)  # type: ignore[arg-type]
        setup.log_level = "debug"
        setup.add_app("k.yaml", application("k", url or created, "k", image))
        if "git_urls" not in config:
            seen.caches.append(setup.cache)
        return seen.run(label, setup, env={**creds, **env})

    assert scenario("basic-ok", image=basic_image, env={}) == 0
    assert git_server.read_file("secrets-basic-ok", "k/kustomization.yaml") == kustomization(basic_image, "1.1.0")
    assert scenario("token-ok", image=token_image, env={}) == 0
    assert scenario("registry-wrong", image=basic_image, env={"IU_REG": f"{user}:{WRONG_REGISTRY}"}) == 1
    assert "401" in seen.texts["registry-wrong"] or "authentication" in seen.texts["registry-wrong"]
    assert scenario("git-wrong", image=basic_image, env={"IU_FAULTS_GIT_PASSWORD": WRONG_GIT}) == 1
    assert "git clone failed" in seen.texts["git-wrong"]
    embedded = git_server.repo_url("secrets-basic-ok").replace("://", f"://{git_server.username}:{EMBEDDED}@")
    assert scenario("url-with-password", image=basic_image, env={}, url=embedded, git_urls=["http://nowhere/"]) == 1
    program = tmp_path / "creds.sh"
    program.write_text(f"#!/bin/sh\necho '{user}:{EXT_SECRET}'\n")
    program.chmod(0o755)
    registries[0]["credentials"] = f"ext:{program}"
    assert scenario("ext-wrong", image=basic_image, env={}) == 1
    test_config = Config(tmp_path / "test-cmd", git_server, registries=[dict(registries[1])])
    seen.run("test-command", test_config, "test", token_image, "--config", str(test_config.write()), env=creds)
    seen.run(
        "test-command-wrong",
        test_config,
        "test",
        basic_image,
        "--credentials",
        "env:IU_REG",
        env={"IU_REG": f"{user}:{WRONG_REGISTRY}"},
    )

    found: list[str] = []
    for label, text in seen.texts.items():
        found += _scan(f"the output of {label}", text, secrets)
        assert "eyJ" not in text, f"a token (JWT) in the output of {label}"
    for repo in seen.repos:
        bare = git_server.bare_path(repo)
        history = run_git(["log", "--all", "-p", "--format=%H%n%an <%ae>%n%B"], git_dir=bare).stdout.decode()
        found += _scan(f"the history of {repo}", history, secrets)
    for cache in seen.caches:
        for path in cache.rglob("*"):
            if path.is_file():
                found += _scan(str(path.relative_to(tmp_path)), path.read_bytes().decode(errors="replace"), secrets)
    assert not found, found
    # the scan looked at real output: each run printed its log lines
    quiet = [label for label, text in seen.texts.items() if "127.0.0.1" not in text]
    assert not quiet, {label: seen.texts[label] for label in quiet}
