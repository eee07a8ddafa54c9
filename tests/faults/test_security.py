"""Attacks: forged and oversized webhooks, write-back paths that leave the repository, ``ext:`` programs,
registry credentials sent elsewhere on redirects. The secrets scan is in ``test_secrets_scan.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from image_updater.adapters.registry import credentials as credentials_module
from image_updater.cli import main
from tests.conftest import ProxyFactory, RegistryFactory
from tests.faults.kit import Config, patch_pool, run_cli, sniffer
from tests.harness.gitserver import GitHttpServer, run_git
from tests.harness.proxy import Fault, RequestInfo
from tests.harness.registry import RegistryServer
from tests.harness.util import free_port, wait_until
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration

DIST_SECRET = "dist-S3cret-4f9a2"
GHCR_SECRET = "ghcr-S3cret-8b1c7"


# -- webhooks -----------------------------------------------------------------------------------------


class Service:
    """``image-updater run`` as a subprocess with webhook secrets; stderr kept in a file."""

    def __init__(self, config: Config) -> None:
        self.health, self.webhook = free_port(), free_port()
        config.extra = (
            f"interval: 1h\nhealth_port: {self.health}\n"
            f"webhook:\n  port: {self.webhook}\n  secrets:\n"
            "    distribution: env:IU_DIST_SECRET\n    ghcr.io: env:IU_GHCR_SECRET\n"
        )
        self.log = config.tmp / "service.log"
        env = {**config.env(), "IU_DIST_SECRET": DIST_SECRET, "IU_GHCR_SECRET": GHCR_SECRET}
        command = [sys.executable, "-m", "image_updater.cli", "run", "--config", str(config.write())]
        command += ["--listen-address", "127.0.0.1", "--webhook-coalesce", "50ms"]
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.webhook}/webhook"

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.health}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return self.proc.poll() is not None

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.health}/metrics", timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@contextlib.contextmanager
def service(config: Config) -> Iterator[Service]:
    running = Service(config)
    try:
        assert wait_until(running.ready, timeout=30) and running.proc.poll() is None, running.log.read_text()
        yield running
    finally:
        running.close()


def _envelope(host: str, repo: str, tag: str) -> bytes:
    event = {"action": "push", "target": {"repository": repo, "tag": tag, "mediaType": "x"}, "request": {"host": host}}
    return json.dumps({"events": [event]}).encode()


def _ghcr(owner: str, name: str, tag: str) -> bytes:
    package = {
        "name": name,
        "package_type": "CONTAINER",
        "owner": {"login": owner},
        "package_version": {"container_metadata": {"tag": {"name": tag}}},
    }
    return json.dumps({"action": "published", "package": package}).encode()


def test_forged_and_oversized_webhooks_are_refused_and_change_nothing(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path
) -> None:
    repo = "security/hooked"
    push_tags(registry_anon, repo, "1.0.0", "1.1.0")
    image = f"{registry_anon.host}/{repo}"
    url = git_server.create_repo("sec-hooked", {"k/kustomization.yaml": kustomization(image, "1.0.0")})
    config = Config(
        tmp_path, git_server, registries=[{"name": "r", "prefix": registry_anon.host, "api_url": registry_anon.url}]
    )
    config.add_app("k.yaml", application("k", url, "k", image))

    with service(config) as svc:
        assert git_server.read_file("sec-hooked", "k/kustomization.yaml") == kustomization(image, "1.1.0")
        head = git_server.rev_parse("sec-hooked")
        push_tags(registry_anon, repo, "1.2.0")
        body = _envelope(registry_anon.host, repo, "1.2.0")
        ghcr = _ghcr("acme", "hooked", "1.2.0")
        good_sig = "sha256=" + hmac.new(GHCR_SECRET.encode(), ghcr, hashlib.sha256).hexdigest()
        forged = [
            ("distribution", {}, body),
            ("distribution", {"Authorization": "Bearer wrong-secret"}, body),
            ("distribution", {"Authorization": DIST_SECRET[:-1]}, body),
            ("distribution&secret=wrong", {}, body),
            ("ghcr.io", {"X-GitHub-Event": "package"}, ghcr),
            ("ghcr.io", {"X-GitHub-Event": "package", "X-Hub-Signature-256": "sha256=" + "0" * 64}, ghcr),
            ("ghcr.io", {"X-GitHub-Event": "package", "X-Hub-Signature-256": good_sig}, ghcr + b" "),
            ("ghcr.io", {"X-GitHub-Event": "package", "Authorization": GHCR_SECRET}, ghcr),  # a token is no signature
        ]
        for source, headers, payload in forged:
            answer = httpx.post(f"{svc.url}?type={source}", content=payload, headers=headers, timeout=5)
            assert answer.status_code == 401, (source, headers, answer.text)
        big = b'{"events": [' + b" " * (2 << 20) + b"]}"
        auth = {"Authorization": f"Bearer {DIST_SECRET}"}
        answer = httpx.post(f"{svc.url}?type=distribution", content=big, headers=auth, timeout=10)
        assert answer.status_code == 413
        chunked = httpx.post(f"{svc.url}?type=distribution", content=iter([big[:1000], big[1000:]]), headers=auth)
        assert chunked.status_code == 413 and "content-length" not in chunked.request.headers

        time.sleep(0.5)  # several coalescing windows: a queued push would have run its cycle by now
        assert git_server.rev_parse("sec-hooked") == head
        assert svc.metric("image_updater_cycles_total", kind="webhook") == 0
        assert svc.metric("image_updater_webhook_events_total", outcome="unauthorized") == len(forged)
        assert svc.metric("image_updater_webhook_events_total", outcome="too_large") == 2

        # the same push, signed, is taken: the checks above could have failed
        answer = httpx.post(f"{svc.url}?type=distribution", content=body, headers=auth, timeout=5)
        assert answer.status_code == 202
        assert wait_until(lambda: git_server.rev_parse("sec-hooked") != head, timeout=15)
        assert git_server.read_file("sec-hooked", "k/kustomization.yaml") == kustomization(image, "1.2.0")
    log = svc.log.read_text()
    assert "webhook refused" in log
    assert DIST_SECRET not in log and GHCR_SECRET not in log


# -- write-back paths ---------------------------------------------------------------------------------


def _push_symlinks(git: GitHttpServer, name: str, links: dict[str, str], tmp: Path) -> None:
    work = tmp / f"links-{name}"
    run_git(["clone", "-q", git.repo_url(name, with_credentials=True), str(work)])
    for path, target in links.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, work / path)
    run_git(["add", "-A"], cwd=work)
    run_git(["commit", "-qm", "links"], cwd=work)
    run_git(["push", "-q", "origin", "HEAD:main"], cwd=work)


def test_write_back_paths_that_leave_the_repository_are_refused(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = f"{registry_anon.host}/security/paths"
    push_tags(registry_anon, "security/paths", "1.0.0", "1.1.0")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "values.yaml").write_text(f"image:\n  tag: 1.0.0\n  name: {image}\n")
    (outside / "kustomization.yaml").write_text(kustomization(image, "1.0.0"))
    (outside / "deploy.yaml").write_text(f"kind: Pod\nspec:\n  containers:\n  - name: x\n    image: {image}:1.0.0\n")
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    git_server.create_repo("sec-paths", {"ok/kustomization.yaml": kustomization(image, "1.0.0")})
    _push_symlinks(
        git_server,
        "sec-paths",
        {
            "file-link/values.yaml": str(outside / "values.yaml"),  # a file that points out
            "dir-link": str(outside),  # a folder that points out
            "git-link/values.yaml": "../.git/config",  # into .git
        },
        tmp_path,
    )
    url = git_server.repo_url("sec-paths")
    config = Config(
        tmp_path / "run",
        git_server,
        registries=[{"name": "r", "prefix": registry_anon.host, "api_url": registry_anon.url}],
    )
    refused = {
        "dotdot": ("ok", "kustomization:../.."),
        "dotdot-root": ("ok", "helmvalues:/../outside/values.yaml"),
        "file-symlink": ("file-link", "helmvalues:values.yaml"),
        "dir-symlink": ("dir-link", "manifests"),
        "dir-symlink-kust": ("dir-link", "kustomization"),
        "into-git": ("git-link", "helmvalues:values.yaml"),
        "git-folder": ("ok", "helmvalues:/.git/config"),
    }
    for name, (path, target) in refused.items():
        config.add_app(f"{name}.yaml", application(name, url, path, image, target=target))
    config.add_app("good.yaml", application("good", url, "ok", image))

    run = run_cli(config, monkeypatch)

    assert run.code == 1
    for name in refused:
        lines = [e for e in run.errors() if re.match(rf"error: application {name}[:,]", e)]
        assert len(lines) == 1, (name, run.stderr)
        line = lines[0]
        assert "leads outside the repository" in line or "leads into" in line, line
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
    assert git_server.read_file("sec-paths", "ok/kustomization.yaml") == kustomization(image, "1.1.0")
    assert git_server.list_files("sec-paths") == sorted(
        ["ok/kustomization.yaml", "file-link/values.yaml", "dir-link", "git-link/values.yaml"]
    )


def test_an_absolute_target_path_means_the_repository_root_never_the_host(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = f"{registry_anon.host}/security/abs"
    push_tags(registry_anon, "security/abs", "1.0.0", "1.1.0")
    host_file = tmp_path / "host" / "values.yaml"
    host_file.parent.mkdir()
    host_file.write_text("image:\n  tag: 1.0.0\n")
    url = git_server.create_repo("sec-abs", {"README": "x"})
    config = Config(
        tmp_path / "run",
        git_server,
        registries=[{"name": "r", "prefix": registry_anon.host, "api_url": registry_anon.url}],
    )
    config.add_app("a.yaml", application("a", url, "app", image, target=f"helmvalues:{host_file}", force_update="true"))

    assert run_cli(config, monkeypatch).code == 0

    assert host_file.read_text() == "image:\n  tag: 1.0.0\n"
    inside = str(host_file).lstrip("/")
    assert "tag: 1.1.0" in (git_server.read_file("sec-abs", inside) or "")


# -- ext: credential programs -------------------------------------------------------------------------


def _program(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_ext_programs_run_without_a_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    patch_pool(monkeypatch)
    args_file = tmp_path / "args"
    program = _program(tmp_path, "creds.sh", f'printf "%s\\n" "$@" > {args_file}\necho "u:p"\n')
    evil = tmp_path / "pwned"
    spec = f"ext:{program} $(touch {evil}) ; touch {evil}2 `touch {evil}3` && touch {evil}4"

    main(["test", "127.0.0.1:1/nowhere", "--credentials", spec])  # the registry is not there; the program ran

    assert args_file.read_text().split("\n")[:-1] == [
        "$(touch",
        f"{evil})",
        ";",
        "touch",
        f"{evil}2",
        "`touch",
        f"{evil}3`",
        "&&",
        "touch",
        f"{evil}4",
    ]
    assert not list(tmp_path.glob("pwned*"))
    err = capsys.readouterr().err
    assert "must read as" not in err  # "u:p" was read as credentials
    relative = main(["test", "127.0.0.1:1/nowhere", "--credentials", "ext:creds.sh"])
    assert relative == 1 and "needs an absolute path" in capsys.readouterr().err


def test_an_ext_program_that_hangs_is_killed_with_its_children_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = tmp_path / "pid"
    program = _program(tmp_path, "hangs.sh", f"sleep 300 &\necho $! > {pid_file}\nwait\n")
    monkeypatch.setattr(credentials_module, "EXT_TIMEOUT_S", 0.5)
    patch_pool(monkeypatch)

    started = time.monotonic()
    assert main(["test", "127.0.0.1:1/nowhere", "--credentials", f"ext:{program}"]) == 1
    assert time.monotonic() - started < 5
    assert "did not finish within 0.5 s" in capsys.readouterr().err

    child = int(pid_file.read_text())

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return False

    # regression: the program was killed at the timeout, but its children ran on (one more every cycle)
    assert wait_until(gone, timeout=3)


# -- credentials and redirects ------------------------------------------------------------------------


def _redirect(kind: str, target: str) -> object:
    def hook(info: RequestInfo) -> Fault | None:
        if info.kind != kind:
            return None
        location = target + info.path + (f"?{info.query}" if info.query else "")
        return Fault(status=307, headers={"Location": location})

    return hook


@pytest.mark.parametrize(("mode", "kind"), [("basic", "tags"), ("token", "tags"), ("token", "token")])
def test_registry_credentials_never_follow_a_redirect_to_another_host(
    mode: str,
    kind: str,
    registry_factory: RegistryFactory,
    tags_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = registry_factory(mode)
    push_tags(registry, "security/redirect", "1.0.0")
    user, password = registry.credentials or ("", "")
    proxy = tags_proxy(registry)
    if kind == "token":
        proxy.rewrite_realm = f"{proxy.url}/token"  # the realm on the proxy, which redirects it
    monkeypatch.setenv("IU_REDIRECT_CREDS", f"{user}:{password}")
    config = tmp_path / "config.yaml"
    entry = f"- name: p\n  prefix: {proxy.host}\n  api_url: {proxy.url}\n  credentials: env:IU_REDIRECT_CREDS\n"
    config.write_text("registries:\n" + entry)
    with sniffer() as sniff:
        proxy.fault = _redirect(kind, sniff.url)
        code = main(["test", f"{proxy.host}/security/redirect", "--config", str(config)])
        assert sniff.seen, "the redirect was not followed: this test would prove nothing"
        assert sniff.authorizations() == []
    assert code == 1
    err = capsys.readouterr().err
    assert password not in err
    # the credentials did go where they belong: to the registry's own host
    assert any(r.header("authorization") for r in proxy.requests)
