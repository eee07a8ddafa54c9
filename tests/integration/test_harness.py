"""Proves the integration-test harness against independent clients (skopeo, git, plain httpx).

Nothing here touches the product: these tests only show that the servers, the token flow, the push
helpers, the paginating proxy and the Git server behave like the real things.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import ProxyFactory, require_binary
from tests.harness.gitserver import GitCommandError, GitHttpServer, git_env
from tests.harness.proxy import Fault, fault_sequence, too_many_requests
from tests.harness.registry import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    RegistryServer,
    delete_tag,
    list_tags,
    push_image,
    push_index,
    push_tags,
)

pytestmark = pytest.mark.integration

CREATED = dt.datetime(2023, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
CREATED_ARM = dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=dt.UTC)


def skopeo(server: RegistryServer, command: str, *args: str, global_args: tuple[str, ...] = ()) -> Any:
    """Run ``skopeo [GLOBAL] COMMAND ARGS`` against ``server`` (with ``--creds`` for basic/token), parse JSON."""
    creds = ["--creds", f"{server.username}:{server.password}"] if server.credentials else []
    cmd = [require_binary("skopeo"), *global_args, command, "--tls-verify=false", *creds, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def parse_time(text: str) -> dt.datetime:
    """Parse skopeo's RFC 3339 timestamps."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(params=["anonymous", "basic", "token"])
def registry(request: pytest.FixtureRequest) -> RegistryServer:
    """Each of the three session registries in turn."""
    name = {"anonymous": "registry_anon", "basic": "registry_basic", "token": "registry_token"}[request.param]
    server: RegistryServer = request.getfixturevalue(name)
    return server


@pytest.mark.parametrize("media_type", ["docker", "oci"])
def test_pushed_image_is_listed_and_inspected_by_skopeo(registry: RegistryServer, media_type: str) -> None:
    repo = f"harness/single-{media_type}"
    digest = push_image(registry, repo, "1.2.3", created=CREATED, media_type=media_type)  # type: ignore[arg-type]

    assert "1.2.3" in list_tags(registry, repo)
    info = skopeo(registry, "inspect", f"docker://{registry.host}/{repo}:1.2.3")
    assert info["Digest"] == digest
    assert parse_time(info["Created"]) == CREATED
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    tags = skopeo(registry, "list-tags", f"docker://{registry.host}/{repo}")
    assert "1.2.3" in tags["Tags"]


@pytest.mark.parametrize(("media_type", "index_type"), [("oci", OCI_INDEX), ("docker", DOCKER_MANIFEST_LIST)])
def test_multi_platform_index_is_seen_by_skopeo_raw(
    registry_anon: RegistryServer, media_type: str, index_type: str
) -> None:
    repo = f"harness/multi-{media_type}"
    platforms = {"linux/amd64": CREATED, "linux/arm64": CREATED_ARM}
    digest = push_index(registry_anon, repo, "2.0.0", platforms=platforms, media_type=media_type)  # type: ignore[arg-type]

    proc = subprocess.run(
        [
            require_binary("skopeo"),
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry_anon.host}/{repo}:2.0.0",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert "sha256:" + hashlib.sha256(proc.stdout).hexdigest() == digest
    raw = json.loads(proc.stdout)
    assert raw["mediaType"] == index_type
    seen = {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in raw["manifests"]}
    assert seen == {"linux/amd64", "linux/arm64"}

    arm = skopeo(
        registry_anon,
        "inspect",
        f"docker://{registry_anon.host}/{repo}:2.0.0",
        global_args=("--override-arch", "arm64"),
    )
    assert arm["Architecture"] == "arm64"
    assert parse_time(arm["Created"]) == CREATED_ARM


def test_token_for_one_repository_is_refused_for_another(registry_token: RegistryServer) -> None:
    tokens = registry_token.token_server
    assert tokens is not None
    push_image(registry_token, "team/a", "v1", created=CREATED)
    push_image(registry_token, "team/b", "v1", created=CREATED)

    token_a = tokens.mint("repository:team/a:pull")
    bearer = {"Authorization": f"Bearer {token_a}"}
    assert httpx.get(f"{registry_token.url}/v2/team/a/tags/list", headers=bearer).status_code == 200
    refused = httpx.get(f"{registry_token.url}/v2/team/b/tags/list", headers=bearer)
    assert refused.status_code == 401
    assert 'scope="repository:team/b:pull"' in refused.headers["WWW-Authenticate"]
    assert "insufficient_scope" in refused.headers["WWW-Authenticate"]

    # The HTTP flow: anonymous is refused, credentials get a kid-signed token with the right claims.
    params = {"service": tokens.service, "scope": "repository:team/a:pull"}
    before = tokens.request_count
    assert httpx.get(tokens.realm, params=params).status_code == 401
    answer = httpx.get(tokens.realm, params=params, auth=(tokens.username, tokens.password))
    assert answer.status_code == 200
    body = answer.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == tokens.expires_in
    assert jwt.get_unverified_header(body["token"])["kid"] == tokens.kid
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["iss"] == tokens.issuer
    assert claims["aud"] == tokens.service
    assert claims["access"] == [{"type": "repository", "name": "team/a", "actions": ["pull"]}]
    assert {"exp", "nbf", "iat", "jti"} <= claims.keys()
    assert tokens.request_count == before + 2

    tokens.fail_next(1, 503)
    assert httpx.get(tokens.realm, params=params, auth=(tokens.username, tokens.password)).status_code == 503
    assert httpx.get(tokens.realm, params=params, auth=(tokens.username, tokens.password)).status_code == 200


def test_proxy_pages_300_tags_in_6_pages(registry_anon: RegistryServer, tags_proxy: ProxyFactory) -> None:
    repo = "harness/many"
    tags = {f"1.{i // 100}.{i % 100}": CREATED + dt.timedelta(minutes=i) for i in range(300)}
    started = time.monotonic()
    digests = push_tags(registry_anon, repo, tags)
    elapsed = time.monotonic() - started
    assert len(set(digests.values())) == 300
    assert elapsed < 15, f"pushing 300 tags took {elapsed:.1f}s"
    assert list_tags(registry_anon, repo) == sorted(tags)

    proxy = tags_proxy(registry_anon, page_size=50)
    pages: list[list[str]] = []
    links: list[str] = []
    with httpx.Client(base_url=proxy.url) as client:
        url: str | None = f"/v2/{repo}/tags/list"
        while url is not None:
            response = client.get(url)
            assert response.status_code == 200
            pages.append(response.json()["tags"])
            link = response.headers.get("Link")
            if link is None:
                url = None
            else:
                links.append(link)
                assert link.endswith('>; rel="next"')
                url = link[1 : link.index(">")]
    assert [len(p) for p in pages] == [50] * 6
    assert len(links) == 5
    assert links[0] == f'</v2/{repo}/tags/list?n=50&last={pages[0][-1]}>; rel="next"'
    assert [t for page in pages for t in page] == sorted(tags)
    assert proxy.count("tags") == 6

    # Client-chosen page size, without a forced one.
    proxy.page_size = None
    first = httpx.get(f"{proxy.url}/v2/{repo}/tags/list", params={"n": 120})
    assert len(first.json()["tags"]) == 120
    assert "n=120&last=" in first.headers["Link"]

    # skopeo follows the Link headers through the proxy and sees every tag.
    proxy.page_size = 50
    proxy.reset_counts()
    via_skopeo = skopeo(registry_anon, "list-tags", f"docker://{proxy.host}/{repo}")
    assert sorted(via_skopeo["Tags"]) == sorted(tags)
    assert proxy.count("tags") == 6

    # Deleting a tag is visible upstream.
    delete_tag(registry_anon, repo, "1.2.99")
    assert "1.2.99" not in list_tags(registry_anon, repo)


def test_proxy_fault_hook(registry_anon: RegistryServer, tags_proxy: ProxyFactory) -> None:
    push_image(registry_anon, "harness/faults", "v1", created=CREATED)
    proxy = tags_proxy(registry_anon, fault=fault_sequence(too_many_requests(2), kind="tags"))
    with httpx.Client(base_url=proxy.url) as client:
        limited = client.get("/v2/harness/faults/tags/list")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "2"
        assert client.get("/v2/harness/faults/tags/list").json()["tags"] == ["v1"]
        proxy.fault = lambda info: Fault(reset=True) if info.kind == "ping" else None
        with pytest.raises(httpx.TransportError):
            client.get("/v2/")
    assert proxy.counts["tags"] == 2
    assert proxy.counts["ping"] == 1


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=git_env(), timeout=60, check=False
    )


def test_git_server_needs_credentials_to_push(git_server: GitHttpServer, tmp_path: Path) -> None:
    name = "config-auth"
    url = git_server.create_repo(name, {"apps/web/values.yaml": "image:\n  tag: 1.0.0\n"})
    assert url == f"{git_server.url}/{name}.git"
    assert git_server.read_file(name, "apps/web/values.yaml") == "image:\n  tag: 1.0.0\n"

    # Without credentials: no clone, no push.
    assert _git(["clone", url, str(tmp_path / "anon")]).returncode != 0
    work = tmp_path / "work"
    assert _git(["clone", git_server.repo_url(name, with_credentials=True), str(work)]).returncode == 0
    (work / "apps/web/values.yaml").write_text("image:\n  tag: 1.1.0\n")
    assert _git(["commit", "-qam", "bump web to 1.1.0"], cwd=work).returncode == 0
    refused = _git(["push", url, "HEAD:main"], cwd=work)
    assert refused.returncode != 0
    assert git_server.commit_count(name, "main") == 1

    # With credentials (the clone URL carries them).
    pushed = _git(["push", "origin", "HEAD:main"], cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    assert git_server.read_file(name, "apps/web/values.yaml") == "image:\n  tag: 1.1.0\n"
    assert git_server.read_file(name, "missing.yaml") is None
    log = git_server.log(name)
    assert [(e.subject, e.author_name) for e in log] == [
        ("bump web to 1.1.0", "Harness Seeder"),
        ("init", "Harness Seeder"),
    ]
    assert git_server.commit_count(name, "main") == 2

    # Another client moves main; a stale force push is refused once the branch is protected.
    git_server.push_commit(name, {"apps/web/values.yaml": "image:\n  tag: 9.9.9\n"}, "other client")
    assert git_server.log(name)[0].author_name == "Other Client"
    git_server.set_config(name, "receive.denyNonFastForwards", "true")
    (work / "apps/web/values.yaml").write_text("image:\n  tag: 1.2.0\n")
    assert _git(["commit", "-qam", "stale"], cwd=work).returncode == 0
    assert _git(["push", "--force", "origin", "HEAD:main"], cwd=work).returncode != 0
    assert git_server.read_file(name, "apps/web/values.yaml") == "image:\n  tag: 9.9.9\n"
    with pytest.raises(GitCommandError):
        git_server.push_commit("does-not-exist", {"a": "b"}, "nope")
