"""Credentials in Secrets, read through lightkube over HTTP: fields, Git repo secrets.

Registry credentials (``pullsecret:``, ``secret:``) read through these fields are tested on the
production path, ``resolve_credentials``, in test_pullsecret_credentials.py."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from image_updater.adapters.k8s.secrets import SecretCredentials, parse_secret_ref
from image_updater.errors import ImageUpdaterError, WriteBackError
from image_updater.logsetup import redact
from tests.harness.kubetarget import KubeTarget

pytestmark = pytest.mark.anyio



def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def opaque(namespace: str, name: str, **fields: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: b64(v) for k, v in fields.items()},
    }


async def test_secret_field_reads_one_field_and_names_what_is_missing(
    kube: KubeTarget, secrets: SecretCredentials
) -> None:
    ns = kube.namespace("field")
    kube.create(opaque(ns, "creds", registry="robot:pa:ss-word"))
    assert await secrets.secret_field(ns, "creds", "registry") == "robot:pa:ss-word"
    assert redact("robot:pa:ss-word") == "***"
    with pytest.raises(ImageUpdaterError, match=rf"Secret {ns}/creds has no field 'nope'"):
        await secrets.secret_field(ns, "creds", "nope")
    with pytest.raises(ImageUpdaterError, match=rf"cannot read Secret {ns}/absent: HTTP 404 NotFound"):
        await secrets.secret_field(ns, "absent", "registry")


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


def test_secret_references() -> None:
    assert parse_secret_ref("secret:ns/name#field", prefix="secret:") == ("ns", "name", "field")
    assert parse_secret_ref("pullsecret:ns/name", prefix="pullsecret:") == ("ns", "name", None)
    with pytest.raises(ValueError):
        parse_secret_ref("pullsecret:ns/a/b", prefix="pullsecret:")
