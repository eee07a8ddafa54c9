"""Credentials in Secrets, read through lightkube over HTTP: pull secrets, fields, Git repo secrets."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube import AsyncClient

from image_updater.adapters.k8s.client import build_client
from image_updater.adapters.k8s.secrets import (
    SecretCredentials,
    credentials_from_docker_config,
    parse_secret_ref,
    registry_host,
)
from image_updater.errors import ImageUpdaterError, RegistryAuthError, WriteBackError
from image_updater.logsetup import redact
from tests.harness.kubetarget import KubeTarget

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def secrets(kube: KubeTarget) -> AsyncIterator[SecretCredentials]:
    client: AsyncClient = build_client(kube.kubeconfig, context=kube.context)
    yield SecretCredentials(client)
    await client.close()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pull_secret(namespace: str, name: str, auths: dict[str, Any], *, legacy: bool = False) -> dict[str, Any]:
    key, kind = (
        (".dockercfg", "kubernetes.io/dockercfg") if legacy else (".dockerconfigjson", "kubernetes.io/dockerconfigjson")
    )
    config = auths if legacy else {"auths": auths}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": kind,
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: b64(json.dumps(config))},
    }


def opaque(namespace: str, name: str, **fields: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: b64(v) for k, v in fields.items()},
    }


@pytest.mark.parametrize("registry", ["docker.io", "registry-1.docker.io", "index.docker.io"])
async def test_the_docker_hub_key_kubectl_writes_serves_every_name_of_docker_hub(
    kube: KubeTarget, secrets: SecretCredentials, registry: str
) -> None:
    ns = kube.namespace("pull")
    hub = {"https://index.docker.io/v1/": {"username": "hubuser", "password": "hub-pass-1"}}
    kube.create(pull_secret(ns, "regcred", {**hub, "ghcr.io": {"auth": b64("gh:gh-token-2")}}))
    creds = await secrets.registry(f"pullsecret:{ns}/regcred", registry=registry)
    assert (creds.username, creds.password) == ("hubuser", "hub-pass-1")
    ghcr = await secrets.registry(f"pullsecret:{ns}/regcred", registry="ghcr.io")
    assert (ghcr.username, ghcr.password) == ("gh", "gh-token-2")
    assert redact("token gh-token-2 and hub-pass-1") == "token *** and ***"


async def test_a_docker_io_key_and_a_legacy_dockercfg_are_read(kube: KubeTarget, secrets: SecretCredentials) -> None:
    ns = kube.namespace("pull")
    kube.create(pull_secret(ns, "plain", {"docker.io": {"username": "u", "password": "p-docker-io"}}))
    kube.create(pull_secret(ns, "old", {"https://127.0.0.1:5000": {"auth": b64("local:p-local")}}, legacy=True))
    assert (await secrets.registry(f"pullsecret:{ns}/plain", registry="registry-1.docker.io")).password == "p-docker-io"
    assert (await secrets.registry(f"pullsecret:{ns}/old", registry="127.0.0.1:5000")).username == "local"


async def test_a_registry_without_an_entry_names_the_hosts_not_the_passwords(
    kube: KubeTarget, secrets: SecretCredentials
) -> None:
    ns = kube.namespace("pull")
    kube.create(pull_secret(ns, "regcred", {"quay.io": {"username": "q", "password": "quay-secret"}}))
    with pytest.raises(RegistryAuthError) as caught:
        await secrets.registry(f"pullsecret:{ns}/regcred", registry="ghcr.io")
    text = str(caught.value)
    assert f"Secret {ns}/regcred has no entry for ghcr.io (it has: quay.io)" in text
    assert "quay-secret" not in text and caught.value.registry == "ghcr.io"


async def test_secret_field_with_user_and_password(kube: KubeTarget, secrets: SecretCredentials) -> None:
    ns = kube.namespace("field")
    kube.create(opaque(ns, "creds", registry="robot:pa:ss-word", broken="no-colon"))
    creds = await secrets.registry(f"secret:{ns}/creds#registry", registry="quay.io")
    assert (creds.username, creds.password) == ("robot", "pa:ss-word")
    assert await secrets.secret_field(ns, "creds", "registry") == "robot:pa:ss-word"
    with pytest.raises(RegistryAuthError, match="field 'missing'"):
        await secrets.registry(f"secret:{ns}/creds#missing", registry="quay.io")
    with pytest.raises(RegistryAuthError, match="is not 'username:password'"):
        await secrets.registry(f"secret:{ns}/creds#broken", registry="quay.io")
    with pytest.raises(ImageUpdaterError, match="has no field 'nope'"):
        await secrets.secret_field(ns, "creds", "nope")


async def test_a_missing_secret_is_an_error_naming_it(kube: KubeTarget, secrets: SecretCredentials) -> None:
    ns = kube.namespace("none")
    with pytest.raises(RegistryAuthError, match=rf"cannot read Secret {ns}/absent: HTTP 404 NotFound"):
        await secrets.registry(f"pullsecret:{ns}/absent", registry="docker.io")
    with pytest.raises(RegistryAuthError, match="expected secret:<namespace>/<name>"):
        await secrets.registry("secret:no-namespace#f", registry="docker.io")


async def test_git_secrets_as_argo_cd_repository_secrets_hold_them(
    kube: KubeTarget, secrets: SecretCredentials
) -> None:
    ns = kube.namespace("git")
    kube.create(opaque(ns, "https", username="git-user", password="git-pass-3", url="https://git.example.com/x.git"))
    kube.create(
        opaque(ns, "ssh", sshPrivateKey="-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----")
    )
    kube.create(opaque(ns, "empty", type="git"))
    https = await secrets.git(f"git:secret:{ns}/https", url="https://other.example.com/")
    assert (https.username, https.password, https.url) == ("git-user", "git-pass-3", "https://git.example.com/x.git")
    ssh = await secrets.git(f"secret:{ns}/ssh", url="ssh://git@example.com/x.git")
    assert ssh.ssh_key is not None and ssh.ssh_key.endswith("-----END OPENSSH PRIVATE KEY-----\n")
    assert ssh.url == "ssh://git@example.com/x.git" and ssh.password is None
    with pytest.raises(WriteBackError, match="neither 'username' and 'password' nor 'sshPrivateKey'"):
        await secrets.git(f"git:secret:{ns}/empty")
    with pytest.raises(WriteBackError, match="HTTP 404"):
        await secrets.git(f"git:secret:{ns}/absent")
    assert "git-pass-3" not in redact("password git-pass-3")


def test_registry_hosts_and_references() -> None:
    assert registry_host("https://index.docker.io/v1/") == "docker.io"
    assert registry_host("HTTPS://Quay.io/team") == "quay.io"
    assert registry_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert parse_secret_ref("secret:ns/name#field", prefix="secret:") == ("ns", "name", "field")
    assert parse_secret_ref("pullsecret:ns/name", prefix="pullsecret:") == ("ns", "name", None)
    with pytest.raises(ValueError):
        parse_secret_ref("pullsecret:ns/a/b", prefix="pullsecret:")


def test_auth_wins_over_username_and_password_and_bad_entries_say_why() -> None:
    both = {"auths": {"quay.io": {"auth": b64("from-auth:pw1"), "username": "ignored", "password": "ignored"}}}
    assert credentials_from_docker_config(both, "quay.io") == credentials_from_docker_config(
        {"auths": {"quay.io": {"auth": b64("from-auth:pw1")}}}, "quay.io"
    )
    assert credentials_from_docker_config(both, "quay.io").username == "from-auth"  # type: ignore[union-attr]
    assert credentials_from_docker_config(both, "ghcr.io") is None
    with pytest.raises(ValueError, match="not base64"):
        credentials_from_docker_config({"auths": {"quay.io": {"auth": "%%%"}}}, "quay.io")
    with pytest.raises(ValueError, match="neither 'auth' nor"):
        credentials_from_docker_config({"auths": {"quay.io": {"identitytoken": "t"}}}, "quay.io")
