"""Write-back over SSH: Debian's openssh-server on 127.0.0.1 with generated keys, serving the same bare
repositories as the HTTP server. A push works; a host whose key is unknown or changed is refused with an
error that says so, and no key material shows in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from image_updater.config import GitCredential, GitSettings
from image_updater.service.cycle import Status
from tests.conftest import require_binary
from tests.harness.gitserver import GitHttpServer
from tests.harness.sshserver import SshGitServer
from tests.integration.writeback_kit import git_settings, make_app, run_once

pytestmark = pytest.mark.integration

KUSTOMIZATION = "kind: Kustomization\nimages:\n- name: nginx\n  newTag: 1.25.3\n"
TAGS = {"library/nginx": ["1.25.3", "1.26.0"]}
#: some other host's key: a known_hosts file that does not know our server
OTHER_HOST = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"


@pytest.fixture(scope="module")
def ssh_server(git_server: GitHttpServer) -> Iterator[SshGitServer]:
    """sshd serving the HTTP server's repositories."""
    require_binary("sshd", "openssh-server")
    require_binary("ssh", "openssh-client")
    server = SshGitServer(git_server.root)
    yield server
    server.close()


def ssh_settings(git_server: GitHttpServer, ssh_server: SshGitServer, known_hosts: str) -> GitSettings:
    prefix = f"ssh://{ssh_server.user}@127.0.0.1:{ssh_server.port}/"
    credential = GitCredential(url=prefix, ssh_key=ssh_server.client_key, known_hosts=known_hosts)
    return git_settings(git_server, credentials=(credential,))


def test_a_push_over_ssh_works(git_server: GitHttpServer, ssh_server: SshGitServer, tmp_path: Path) -> None:
    git_server.create_repo("over-ssh", {"k/kustomization.yaml": KUSTOMIZATION})
    app = make_app("web", ssh_server.repo_url("over-ssh"), "k", "nginx", target="kustomization")
    settings = ssh_settings(git_server, ssh_server, ssh_server.known_hosts)

    result = run_once([app], git_server, tmp_path / "cache", TAGS, git=settings)

    assert result.apps[0].status is Status.UPDATED, result.apps[0].errors()
    assert git_server.rev_parse("over-ssh") == result.commits[0]
    assert git_server.read_file("over-ssh", "k/kustomization.yaml") == KUSTOMIZATION.replace("1.25.3", "1.26.0")


@pytest.mark.parametrize("case", ["unknown", "changed"])
def test_an_untrusted_host_key_is_refused_with_a_clear_error(
    git_server: GitHttpServer,
    ssh_server: SshGitServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    name = f"ssh-untrusted-{case}"
    git_server.create_repo(name, {"k/kustomization.yaml": KUSTOMIZATION})
    app = make_app("web", ssh_server.repo_url(name), "k", "nginx", target="kustomization")
    known = OTHER_HOST if case == "unknown" else ssh_server.stranger_known_hosts
    settings = ssh_settings(git_server, ssh_server, known)

    result = run_once([app], git_server, tmp_path / "cache", TAGS, git=settings)

    assert result.apps[0].status is Status.FAILED and not result.commits
    error = str(result.apps[0].errors()[0])
    assert "git clone failed for ssh://" in error
    assert "host key is not trusted" in error and "known_hosts" in error
    key_body = ssh_server.client_key.splitlines()[1]
    assert key_body not in error + capsys.readouterr().out
    assert git_server.commit_count(name) == 1
