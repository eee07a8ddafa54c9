"""Registry credentials: Docker config files (the Docker Hub key problem), Secrets through a provider,
``env:``/``file:``/``ext:`` values, and errors that name the setting without showing a secret."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from typing import Any

import pytest

from image_updater.adapters.registry.credentials import credentials_from_docker_config, resolve_credentials
from image_updater.errors import RegistryAuthError
from image_updater.model.ref import parse_image_name


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Secrets:
    """A CredentialsProvider over a dict, as the Kubernetes source will provide one."""

    def __init__(self, data: dict[tuple[str, str, str], str]) -> None:
        self.data = data
        self.asked: list[tuple[str, str, str]] = []

    async def secret_field(self, namespace: str, name: str, field: str) -> str:
        self.asked.append((namespace, name, field))
        return self.data[(namespace, name, field)]


def docker_config(entries: dict[str, dict[str, str]]) -> str:
    return json.dumps({"auths": entries})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


HUB = parse_image_name("nginx")


@pytest.mark.parametrize(
    "key",
    [
        "https://index.docker.io/v1/",
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://registry-1.docker.io",
    ],
)
def test_docker_hub_pull_secret_keys_all_match_docker_io(key: str) -> None:
    # AIU compares keys with https://registry-1.docker.io as a string prefix: the first key never matches
    creds = credentials_from_docker_config(docker_config({key: {"auth": b64("me:pw")}}), HUB)
    assert (creds.username, creds.password) == ("me", "pw")


def test_docker_config_longest_path_key_wins_and_username_fields_work() -> None:
    config = docker_config(
        {
            "quay.io": {"auth": b64("all:1")},
            "quay.io/team": {"username": "team", "password": "2"},
            "quay.io/other": {"auth": b64("other:3")},
        }
    )
    assert credentials_from_docker_config(config, parse_image_name("quay.io/team/app")).username == "team"
    assert credentials_from_docker_config(config, parse_image_name("quay.io/x/app")).username == "all"


def test_legacy_dockercfg_and_api_host_keys() -> None:
    legacy = json.dumps({"mirror.example:5000": {"auth": b64("m:p")}})
    creds = credentials_from_docker_config(legacy, parse_image_name("docker.io/x/y"), api_host="mirror.example:5000")
    assert creds.username == "m"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (docker_config({"ghcr.io": {"auth": b64("a:b")}}), "has no entry for docker.io"),
        (json.dumps({"auths": {}, "credHelpers": {"docker.io": "desktop"}}), "credential helper 'desktop'"),
        (docker_config({"docker.io": {"identitytoken": "x"}}), "identity token"),
        (docker_config({"docker.io": {"auth": "%%%"}}), "not base64"),
        ("not json", "not JSON"),
    ],
)
def test_docker_config_problems_are_named(config: str, message: str) -> None:
    with pytest.raises(RegistryAuthError, match=message):
        credentials_from_docker_config(config, HUB)


def test_secret_and_pullsecret_go_through_the_provider() -> None:
    provider = Secrets(
        {
            ("argocd", "creds", "token"): "bot:t0k3n",
            ("argocd", "hub", ".dockerconfigjson"): docker_config(
                {"https://index.docker.io/v1/": {"auth": b64("u:p")}}
            ),
        }
    )
    plain = run(resolve_credentials("secret:argocd/creds#token", image=HUB, provider=provider))
    pulled = run(resolve_credentials("pullsecret:argocd/hub", image=HUB, provider=provider))
    assert (plain.username, plain.password) == ("bot", "t0k3n") and (pulled.username, pulled.password) == ("u", "p")
    assert provider.asked == [("argocd", "creds", "token"), ("argocd", "hub", ".dockerconfigjson")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("pullsecret:argocd/hub", "needs the kubernetes source"),
        ("secret:argocd/creds", "secret:<namespace>/<name>#<field>"),
        ("secret:creds#f", "<namespace>/<name>"),
        ("user:password", "must be one of"),
        ("ext:relative/script", "absolute path"),
        ("env:IU_TEST_UNSET_VARIABLE", "IU_TEST_UNSET_VARIABLE"),
    ],
)
def test_bad_credentials_are_errors_that_name_the_setting(value: str, message: str) -> None:
    with pytest.raises(RegistryAuthError, match=message) as info:
        run(resolve_credentials(value, image=HUB, what="pull-secret"))
    assert "password" not in str(info.value) or value.startswith("user")
    assert "user:password" not in str(info.value)


def test_ext_program_output_and_timeout() -> None:
    def printer(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert kwargs["timeout"] == 10 and kwargs["shell"] is False
        return subprocess.CompletedProcess(command, 0, stdout="AWS:abc\n", stderr="")

    def hangs(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    creds = run(resolve_credentials("ext:/usr/local/bin/ecr-login", image=HUB, run=printer))
    assert (creds.username, creds.password) == ("AWS", "abc")
    with pytest.raises(RegistryAuthError, match="did not finish within 10 s"):
        run(resolve_credentials("ext:/usr/local/bin/ecr-login", image=HUB, run=hangs))
