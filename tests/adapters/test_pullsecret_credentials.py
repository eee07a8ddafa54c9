"""``pullsecret:`` and ``secret:`` registry credentials as production reads them: ``resolve_credentials``
with a :class:`SecretCredentials` provider, over the Kubernetes API (the fake one, or a real cluster).

The Docker config parser itself is tested without Kubernetes in test_registry_pool_credentials.py;
here the Secrets are real objects of the API, in both pull secret formats."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from image_updater.adapters.k8s.secrets import SecretCredentials
from image_updater.adapters.registry.auth import Credentials
from image_updater.adapters.registry.credentials import resolve_credentials
from image_updater.errors import RegistryAuthError
from image_updater.logsetup import redact
from image_updater.model.ref import parse_image_name
from tests.harness.kubetarget import KubeTarget

pytestmark = pytest.mark.anyio



def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pull_secret(namespace: str, name: str, auths: dict[str, Any], *, legacy: bool = False) -> dict[str, Any]:
    """A ``kubernetes.io/dockerconfigjson`` Secret, or with ``legacy`` a ``kubernetes.io/dockercfg`` one."""
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


async def resolve(spec: str, image: str, provider: SecretCredentials) -> Credentials:
    creds = await resolve_credentials(spec, image=parse_image_name(image), provider=provider)
    assert creds is not None
    return creds


@pytest.mark.parametrize("image", ["nginx", "registry-1.docker.io/library/nginx", "index.docker.io/library/nginx"])
async def test_the_docker_hub_key_kubectl_writes_serves_every_name_of_docker_hub(
    kube: KubeTarget, secrets: SecretCredentials, image: str
) -> None:
    ns = kube.namespace("pull")
    hub = {"https://index.docker.io/v1/": {"username": "hubuser", "password": "hub-pass-1"}}
    kube.create(pull_secret(ns, "regcred", {**hub, "ghcr.io": {"auth": b64("gh:gh-token-2")}}))
    creds = await resolve(f"pullsecret:{ns}/regcred", image, secrets)
    assert (creds.username, creds.password) == ("hubuser", "hub-pass-1")
    ghcr = await resolve(f"pullsecret:{ns}/regcred", "ghcr.io/org/app", secrets)
    assert (ghcr.username, ghcr.password) == ("gh", "gh-token-2")
    assert redact("token gh-token-2 and hub-pass-1") == "token *** and ***"


async def test_a_docker_io_key_and_a_legacy_dockercfg_are_read(kube: KubeTarget, secrets: SecretCredentials) -> None:
    ns = kube.namespace("pull")
    kube.create(pull_secret(ns, "plain", {"docker.io": {"username": "u", "password": "p-docker-io"}}))
    kube.create(pull_secret(ns, "old", {"https://127.0.0.1:5000": {"auth": b64("local:p-local")}}, legacy=True))
    assert (await resolve(f"pullsecret:{ns}/plain", "registry-1.docker.io/x/y", secrets)).password == "p-docker-io"
    old = await resolve(f"pullsecret:{ns}/old", "127.0.0.1:5000/app", secrets)
    assert (old.username, old.password) == ("local", "p-local")


async def test_key_scheme_and_host_case_do_not_matter_and_a_path_key_covers_only_its_repositories(
    kube: KubeTarget, secrets: SecretCredentials
) -> None:
    ns = kube.namespace("pull")
    kube.create(pull_secret(ns, "team", {"HTTPS://Quay.io/team": {"auth": b64("team:p-team")}}))
    assert (await resolve(f"pullsecret:{ns}/team", "quay.io/team/app", secrets)).username == "team"
    with pytest.raises(RegistryAuthError, match=r"has no entry for quay\.io \(it has: quay\.io/team\)"):
        await resolve(f"pullsecret:{ns}/team", "quay.io/other/app", secrets)


async def test_a_registry_without_an_entry_names_the_hosts_not_the_passwords(
    kube: KubeTarget, secrets: SecretCredentials
) -> None:
    ns = kube.namespace("pull")
    kube.create(pull_secret(ns, "regcred", {"quay.io": {"username": "q", "password": "quay-secret"}}))
    with pytest.raises(RegistryAuthError) as caught:
        await resolve(f"pullsecret:{ns}/regcred", "ghcr.io/org/app", secrets)
    text = str(caught.value)
    assert f"pull secret {ns}/regcred has no entry for ghcr.io (it has: quay.io)" in text
    assert "quay-secret" not in text and caught.value.registry == "ghcr.io"


async def test_auth_wins_over_username_and_password(kube: KubeTarget, secrets: SecretCredentials) -> None:
    ns = kube.namespace("pull")
    both = {"auth": b64("from-auth:pw1"), "username": "ignored", "password": "ignored"}
    kube.create(pull_secret(ns, "both", {"quay.io": both}))
    creds = await resolve(f"pullsecret:{ns}/both", "quay.io/team/app", secrets)
    assert (creds.username, creds.password) == ("from-auth", "pw1")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"auth": "%%%"}, "the 'auth' of 'quay.io' is not base64"),
        ({"auth": b64("no-colon")}, "the 'auth' of 'quay.io' is not user:password"),
        ({"identitytoken": "t0ken"}, "the entry 'quay.io' has an identity token, which is not supported"),
        ({"username": "only-user"}, "the entry 'quay.io' has no password"),
        ({"password": "only-pass"}, "the entry 'quay.io' has no username"),
    ],
)
async def test_a_bad_entry_is_an_error_naming_the_secret_and_the_key_not_the_values(
    kube: KubeTarget, secrets: SecretCredentials, entry: dict[str, str], message: str
) -> None:
    ns = kube.namespace("pull")
    kube.create(pull_secret(ns, "bad", {"quay.io": entry}))
    with pytest.raises(RegistryAuthError) as caught:
        await resolve(f"pullsecret:{ns}/bad", "quay.io/team/app", secrets)
    text = str(caught.value)
    assert f"pull secret {ns}/bad: {message}" in text and caught.value.registry == "quay.io"
    assert not any(value in text for value in entry.values())


async def test_a_secret_that_is_no_pull_secret_says_which_field_it_lacks_or_that_it_is_not_json(
    kube: KubeTarget, secrets: SecretCredentials
) -> None:
    ns = kube.namespace("pull")
    kube.create(opaque(ns, "other", token="not-a-docker-config"))
    kube.create(opaque(ns, "garbled", **{".dockerconfigjson": "{garbled-secret"}))
    with pytest.raises(RegistryAuthError, match=rf"Secret {ns}/other has no field '\.dockerconfigjson'"):
        await resolve(f"pullsecret:{ns}/other", "quay.io/team/app", secrets)
    with pytest.raises(RegistryAuthError, match=rf"pull secret {ns}/garbled is not JSON") as caught:
        await resolve(f"pullsecret:{ns}/garbled", "quay.io/team/app", secrets)
    assert "garbled-secret" not in str(caught.value)


async def test_secret_field_with_user_and_password(kube: KubeTarget, secrets: SecretCredentials) -> None:
    ns = kube.namespace("field")
    kube.create(opaque(ns, "creds", registry="robot:pa:ss-word", from_file="robot:pw-file\n", broken="no-colon"))
    creds = await resolve(f"secret:{ns}/creds#registry", "quay.io/team/app", secrets)
    assert (creds.username, creds.password) == ("robot", "pa:ss-word")
    assert (await resolve(f"secret:{ns}/creds#from_file", "quay.io/team/app", secrets)).password == "pw-file"
    with pytest.raises(RegistryAuthError, match=rf"Secret {ns}/creds has no field 'missing'"):
        await resolve(f"secret:{ns}/creds#missing", "quay.io/team/app", secrets)
    with pytest.raises(RegistryAuthError) as caught:
        await resolve(f"secret:{ns}/creds#broken", "quay.io/team/app", secrets)
    assert f"Secret {ns}/creds field 'broken' must read as 'username:password'" in str(caught.value)
    assert "no-colon" not in str(caught.value)


async def test_a_missing_secret_is_an_error_naming_it(kube: KubeTarget, secrets: SecretCredentials) -> None:
    ns = kube.namespace("none")
    with pytest.raises(RegistryAuthError, match=rf"cannot read Secret {ns}/absent: HTTP 404 NotFound") as caught:
        await resolve(f"pullsecret:{ns}/absent", "nginx", secrets)
    assert caught.value.registry == "docker.io"
    with pytest.raises(RegistryAuthError, match="'no-namespace' must be <namespace>/<name>"):
        await resolve("secret:no-namespace#f", "nginx", secrets)
